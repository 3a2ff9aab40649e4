"""A job as the manager and the pages see it: its in-memory record, what its runner gets, its ETA."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.callbacks import Callbacks
from core.store.runs import ACTIVE, Run

FINAL = ("done", "failed", "cancelled", "interrupted")
RESUMABLE = ("interrupted", "cancelled", "failed")
TRAIN_LANE, INTERACTIVE_LANE = "train", "interactive"
ETA_WINDOW = 64  # progress reports the ETA's step time is taken from


@dataclass
class JobContext:
    """What a runner gets: the run folder, its config, callbacks wired to the job."""

    run: Run
    config: dict  # the run's config.json without "kind", "created" and "provenance" (META_KEYS)
    callbacks: Callbacks
    resume: bool
    device: str
    job: "Job"

    @property
    def should_stop(self) -> Callable[[], bool]:
        # the callbacks' check: for a training-lane job it is also the yield point (core.jobs.interactive)
        return self.callbacks.stop_requested

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.callbacks.progress(done, total, message)


@dataclass
class Job:
    run: Run
    kind: str
    device: str
    resume: bool = False
    state: str = "queued"
    step: int = 0
    total: int = 0
    message: str = "waiting to start"
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    traceback: str | None = None
    result: Any = None
    latest_metrics: dict = field(default_factory=dict)
    latest_preview: Path | None = None
    lane: str = TRAIN_LANE
    owner: str | None = None  # the browser session that started it (None: the CLI, a test, a resume after restart)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    _samples: deque = field(default_factory=lambda: deque(maxlen=ETA_WINDOW))  # recent (time, step) progress reports
    _last_write: float = 0.0

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else (1.0 if self.state == "done" else 0.0)

    @property
    def eta_s(self) -> float | None:
        """Seconds left = steps left × the median time per step over the recent progress reports.

        The median ignores the odd long gap (a preview being sampled, a checkpoint written),
        and a pause for interactive work restarts the window, so neither stretches the ETA.
        None until two reports with progress between them exist.
        """
        if self.state != "running" or not self.total:
            return None
        per_step = []
        samples = list(self._samples)
        for (t0, s0), (t1, s1) in zip(samples, samples[1:]):
            if s1 > s0:
                per_step.append((t1 - t0) / (s1 - s0))
        if not per_step:
            return None
        per_step.sort()
        return max(0.0, (self.total - self.step) * per_step[len(per_step) // 2])

    def note_progress(self, done: int, now: float) -> None:
        if self._samples and done < self._samples[-1][1]:  # a restart from an earlier step
            self._samples.clear()
        self._samples.append((now, int(done)))

    def summary(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "device": self.device,
            "state": self.state,
            "step": self.step,
            "total": self.total,
            "message": self.message,
            "eta_s": self.eta_s,
            "error": self.error,
            "lane": self.lane,
            "owner": self.owner,
        }


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA …"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"ETA {seconds}s"
    if seconds < 3600:
        return f"ETA {seconds // 60}m {seconds % 60:02d}s"
    return f"ETA {seconds // 3600}h {(seconds % 3600) // 60:02d}m"
