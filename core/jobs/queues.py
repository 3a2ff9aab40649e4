"""Queueing: two lanes per device, each a FIFO queue with one worker thread.

The training lane runs one job at a time; a second waits in its queue. The interactive lane
(core.jobs.interactive) runs beside it, and only the training lane creates an Accelerator
(its state is process-wide). A new job without a device goes where the fewest trainings wait.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

from core.errors import ConfigError
from core.jobs.interactive import InteractiveLane
from core.jobs.job import INTERACTIVE_LANE, TRAIN_LANE, Job
from core.jobs.records import JobStore


def default_devices() -> list[str]:
    """One worker per visible GPU, else one CPU worker."""
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:  # torch missing or CUDA broken: the CPU still works
        n = 0
    return [f"cuda:{i}" for i in range(n)] or ["cpu"]


class LaneQueues:
    """The queues and worker threads of every (device, lane); ``execute(job)`` runs one job."""

    def __init__(self, devices: list[str], store: JobStore, interactive: InteractiveLane, execute: Callable[[Job], None]):
        self.devices, self.store, self.interactive, self._execute = devices, store, interactive, execute
        lanes = [(d, lane) for d in devices for lane in (TRAIN_LANE, INTERACTIVE_LANE)]
        self._queues: dict[tuple[str, str], queue.Queue] = {k: queue.Queue() for k in lanes}
        self._running: dict[tuple[str, str], Job | None] = {k: None for k in lanes}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for d, lane in self._queues:
            t = threading.Thread(target=self._worker, args=(d, lane), name=f"lab-jobs-{d}-{lane}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float) -> None:
        """Tell every worker to exit once its queue is drained, and wait for them."""
        for q in self._queues.values():
            q.put(None)
        for t in self._threads:
            t.join(timeout)

    def pick_device(self, device: str | None) -> str:
        if device is not None:
            if device not in self.devices:
                raise ConfigError(f"Unknown device '{device}'.", f"Choose one of: {', '.join(self.devices)}.")
            return device
        with self.store.lock:
            load = {d: len(self.store.active(TRAIN_LANE, d)) for d in self.devices}
        return min(self.devices, key=lambda d: (load[d], self.devices.index(d)))

    def enqueue(self, job: Job) -> Job:
        """Record the job queued (its message says how many are ahead) and put it in its lane's queue."""
        with self.store.lock:
            ahead = len(self.store.active(job.lane, job.device))
            where = f"{job.device}" + (" (interactive lane)" if job.lane == INTERACTIVE_LANE else "")
            job.message = f"queued on {where}" + (f" behind {ahead} job(s)" if ahead else "")
            self.store.add_queued(job)
            self._queues[(job.device, job.lane)].put(job)
        return job

    def _worker(self, device: str, lane: str) -> None:
        q = self._queues[(device, lane)]
        while True:
            job = q.get()
            if job is None:
                return
            if job.state != "queued":  # cancelled while waiting
                continue
            with self.store.lock:
                self._running[(device, lane)] = job
            if lane == INTERACTIVE_LANE:
                self.interactive.begin(device)  # the training on this device pauses at its next step
            try:
                self._execute(job)
            finally:
                with self.store.lock:
                    self._running[(device, lane)] = None
                if lane == INTERACTIVE_LANE and q.empty():
                    self.interactive.end(device)
