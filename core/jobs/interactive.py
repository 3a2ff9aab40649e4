"""The interactive lane: short work (previews, small guidance sweeps) that never waits behind a training.

Which jobs are interactive is decided per kind by a predicate on the config (``INTERACTIVE``;
the limits are stated where the predicates are registered, core.jobs.runners). While an
interactive job runs on a device, the training on that device pauses between two steps: its
``should_stop`` callback blocks until the device is idle again, then the loop goes on. Jobs
never compute at the same time on one device.
"""

from __future__ import annotations

import threading
from typing import Callable

from core.jobs.job import INTERACTIVE_LANE, TRAIN_LANE, Job

# Interactive work, by kind: config -> True when the job is short enough for the interactive lane.
INTERACTIVE: dict[str, Callable[[dict], bool]] = {}


def register_interactive(kind: str, predicate: Callable[[dict], bool]) -> None:
    """Mark jobs of ``kind`` whose config satisfies ``predicate`` as interactive."""
    INTERACTIVE[kind] = predicate


def lane_for(kind: str, config: dict) -> str:
    pred = INTERACTIVE.get(kind)
    try:
        return INTERACTIVE_LANE if pred is not None and pred(config) else TRAIN_LANE
    except Exception:  # a malformed config is the runner's to report; it just is not interactive
        return TRAIN_LANE


class InteractiveLane:
    """One flag per device, set while no interactive job runs there; a training waits on it between steps."""

    def __init__(self, devices: list[str]):
        self._idle: dict[str, threading.Event] = {d: threading.Event() for d in devices}
        for e in self._idle.values():
            e.set()

    def begin(self, device: str) -> None:
        """An interactive job starts on ``device``: the training there pauses at its next step."""
        self._idle[device].clear()

    def end(self, device: str) -> None:
        """No interactive job is left on ``device``: the training there continues."""
        self._idle[device].set()

    def release_all(self) -> None:
        """Let every paused training go on (shutdown)."""
        for e in self._idle.values():
            e.set()

    def yield_point(self, job: Job) -> Callable[[], bool]:
        """The ``should_stop`` of a training-lane job: True once it is cancelled."""

        def should_stop() -> bool:
            # The training's yield point: polled between steps, it waits while interactive work
            # runs on this device (a cancel still gets through), then lets the loop go on.
            idle = self._idle[job.device]
            if not idle.is_set() and not job.cancel_event.is_set():
                paused = job.message
                job.message = "paused for an interactive job (a preview); continues right after"
                while not idle.wait(0.1) and not job.cancel_event.is_set():
                    pass
                job._samples.clear()  # the pause is not training time: measure the rate afresh
                if not job.cancel_event.is_set():
                    job.message = paused
            return job.cancel_event.is_set()

        return should_stop
