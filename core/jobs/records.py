"""Job records: the manager's table of jobs in memory and each job's ``status.json`` on disk.

Every job is a run folder (``core.store.runs.Run``). The store writes its state as it moves
(queued, running, progress, the end) and, on construction of a manager, marks runs found
``queued``/``running`` whose owner process (or manager) is gone as ``interrupted``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from core.jobs.job import Job
from core.paths import runs_dir
from core.store.runs import ACTIVE, list_runs

_LIVE_MANAGERS: set[str] = set()  # tokens of JobManagers alive in this process
_STATUS_EVERY_S = 1.0  # how often progress is written to status.json (seconds)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobStore:
    """The jobs of one manager, by run id, and their status on disk. ``lock`` guards both."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"  # the owner written into status.json
        self.lock = threading.RLock()
        self._jobs: dict[str, Job] = {}

    # -- restart ---------------------------------------------------------------------
    def open(self) -> list[str]:
        """Count this store's manager as alive, then mark the orphans; returns their run ids."""
        _LIVE_MANAGERS.add(self.token)
        return self.mark_interrupted()

    def close(self) -> None:
        _LIVE_MANAGERS.discard(self.token)

    @staticmethod
    def _owner_alive(owner: str | None) -> bool:
        if not owner or ":" not in owner:
            return False
        pid_text, _ = owner.split(":", 1)
        try:
            pid = int(pid_text)
        except ValueError:
            return False
        if pid == os.getpid():
            return owner in _LIVE_MANAGERS
        return _pid_alive(pid)

    def mark_interrupted(self) -> list[str]:
        """Runs left queued/running by a process (or manager) that is gone -> ``interrupted``."""
        out = []
        for run in list_runs(self.root):
            st = run.status
            if st.get("state") in ACTIVE and not self._owner_alive(st.get("owner")):
                run.set_status("interrupted", message="the server stopped while this run was " + st.get("state", "?") + "; resume it to continue from its last checkpoint", owner=None)
                out.append(run.id)
        return out

    # -- the table ---------------------------------------------------------------------
    def get(self, run_id: str) -> Job | None:
        with self.lock:
            return self._jobs.get(run_id)

    def jobs(self) -> list[Job]:
        with self.lock:
            return sorted(self._jobs.values(), key=lambda j: j.submitted, reverse=True)

    def active(self, lane: str, device: str | None = None) -> list[Job]:
        """Queued or running jobs of one lane (on one device, if given); cancelled ones are not counted. Hold the lock."""
        return [j for j in self._jobs.values() if j.active and j.lane == lane and (device is None or j.device == device)]

    def wait(self, run_id: str, timeout: float = 60.0) -> Job:
        """Block until a job leaves queued/running (tests and the CLI)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.get(run_id)
            if job is not None and not job.active:
                return job
            time.sleep(0.02)
        raise TimeoutError(f"job {run_id} still {self.get(run_id).state if self.get(run_id) else '?'} after {timeout}s")

    # -- status.json as the job moves ------------------------------------------------------
    def add_queued(self, job: Job) -> None:
        """Write the job ``queued`` (with its message) and put it in the table. Hold the lock."""
        job.run.set_status("queued", message=job.message, owner=self.token, device=job.device, lane=job.lane, error=None, traceback=None)
        self._jobs[job.run.id] = job

    def start(self, job: Job) -> bool:
        """Mark a queued job running; False when it was cancelled meanwhile."""
        with self.lock:  # status.json first, then the state others read: whoever sees "running" finds it on disk
            if job.state != "queued":
                return False
            started = time.time()
            job.run.set_status("running", message="starting", owner=self.token, device=job.device, started=started)
            job.state, job.started, job.message = "running", started, "starting"
        return True

    def progress(self, job: Job, done: int, total: int, message: str = "") -> None:
        """A runner's progress report: kept on the job, written at most every ``_STATUS_EVERY_S`` (and at the end)."""
        now = time.time()
        job.note_progress(done, now)
        job.step, job.total = int(done), int(total)
        if message and not job.cancel_event.is_set():
            job.message = message
        if now - job._last_write >= _STATUS_EVERY_S or done >= total:
            job._last_write = now
            job.run.set_status(step=job.step, total=job.total, message=job.message, eta_s=job.eta_s)

    @staticmethod
    def finish(job: Job, state: str, message: str, error: str | None = None, tb: str | None = None) -> None:
        finished = time.time()
        fields: dict[str, Any] = {"message": message, "error": error, "traceback": tb, "owner": None, "finished": finished}
        if job.total:
            fields.update(step=job.step, total=job.total)
        if job.result is not None and isinstance(job.result, dict):
            fields["result"] = job.result
        job.run.set_status(state, **fields)
        # the state last: wait() returns once the job is final, and status.json must already say so
        job.message, job.error, job.traceback, job.finished = message, error, tb, finished
        job.state = state

    @staticmethod
    def done_message(job: Job) -> str:
        st = job.run.status
        if st.get("state") == "done" and st.get("message"):
            return st["message"]  # the loop's own summary (e.g. "test accuracy 0.93")
        return "done"
