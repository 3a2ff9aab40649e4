"""Running one job on a worker thread: its context and callbacks, the runner, the outcome.

Failures are captured: a ``LabError`` keeps its message, out-of-memory becomes a clear
message with the fix, anything else keeps its traceback. The server keeps serving.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from core.callbacks import Callbacks
from core.errors import LabError
from core.jobs.cancel import CANCELLED_MESSAGE, is_cancellation
from core.jobs.interactive import InteractiveLane
from core.jobs.job import INTERACTIVE_LANE, Job, JobContext
from core.jobs.kinds import RunnerTable
from core.jobs.records import JobStore
from core.store.runs import META_KEYS


def is_oom(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU out-of-memory errors (torch raises several types)."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


class Executor:
    """Runs a job's runner with a :class:`JobContext` and records how it ended in the store."""

    def __init__(self, store: JobStore, runners: RunnerTable, interactive: InteractiveLane):
        self.store, self.runners, self.interactive = store, runners, interactive

    def callbacks(self, job: Job) -> Callbacks:
        def on_progress(done: int, total: int, message: str = "") -> None:
            self.store.progress(job, done, total, message)

        def on_metrics(row: dict) -> None:
            job.latest_metrics = dict(row)

        def on_preview(path: Path) -> None:
            job.latest_preview = Path(path)

        # an interactive job only checks its cancel flag; a training also yields to interactive work
        stop = job.cancel_event.is_set if job.lane == INTERACTIVE_LANE else self.interactive.yield_point(job)
        return Callbacks(on_metrics=on_metrics, on_preview=on_preview, on_progress=on_progress, should_stop=stop)

    def __call__(self, job: Job) -> None:
        run, finish = job.run, self.store.finish
        if not run.exists():
            finish(job, "failed", "the run folder was removed before the job started", error="run folder removed")
            return
        if not self.store.start(job):  # cancelled between the queue and here
            return
        config = {k: v for k, v in run.config.items() if k not in META_KEYS}
        ctx = JobContext(run=run, config=config, callbacks=self.callbacks(job), resume=job.resume, device=job.device, job=job)
        try:
            job.result = self.runners.require(job.kind)(ctx)
        except ImportError as exc:
            msg = f"This job needs a part of the lab that is not available yet ({type(exc).__name__}: {exc})."
            finish(job, "failed", msg, error=msg, tb=traceback.format_exc())
        except LabError as exc:
            finish(job, "failed", str(exc), error=str(exc), tb=traceback.format_exc())
        except BaseException as exc:  # noqa: BLE001  a job must never take the server down
            if is_cancellation(exc):
                finish(job, "cancelled", CANCELLED_MESSAGE)
            elif is_oom(exc):
                msg = (
                    f"Out of memory on {job.device} ({type(exc).__name__}: {str(exc)[:200]}). "
                    "Fix: lower the batch size or pick a smaller preset, then resume; the last checkpoint was kept and no other run was touched."
                )
                finish(job, "failed", msg, error=msg, tb=traceback.format_exc())
            else:
                msg = f"{type(exc).__name__}: {exc}"
                finish(job, "failed", f"failed: {msg}", error=msg, tb=traceback.format_exc())
        else:
            if job.cancel_event.is_set():
                finish(job, "cancelled", CANCELLED_MESSAGE)
            else:
                if job.total:
                    job.step = job.total
                finish(job, "done", self.store.done_message(job))
        finally:
            _release_memory(job.device)


def _release_memory(device: str) -> None:
    if device.startswith("cuda"):
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:
            pass
