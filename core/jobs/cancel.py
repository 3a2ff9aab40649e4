"""Cancellation is cooperative: ``cancel()`` sets a flag the runner polls via ``should_stop``.

A queued job is cancelled at once; a running one stops at its next check, and the training
loops save a checkpoint before they return. With an ``owner`` (the app passes its browser
session), a job another owner started is refused.
"""

from __future__ import annotations

from core.errors import ConfigError
from core.jobs.records import JobStore

CANCELLED_MESSAGE = "cancelled; the last checkpoint was kept"


def is_cancellation(exc: BaseException) -> bool:
    """True for the loops' own stop exception (core.generators.base.Cancelled and friends)."""
    return type(exc).__name__ == "Cancelled"


def cancel(store: JobStore, run_id: str, owner: str | None = None) -> bool:
    """Ask a job to stop. A queued job is cancelled at once; a running one at its next check.

    With ``owner``, a job another owner started is refused with a ConfigError; without it
    (the CLI, shutdown) any job may be cancelled. False when the job is unknown or over.
    """
    with store.lock:
        job = store.get(run_id)
        if job is None or not job.active:
            return False
        if owner is not None and job.owner is not None and job.owner != owner:
            raise ConfigError(f"Job {run_id} was started by someone else (another browser session or person); only its owner can cancel it.",
                              "Nothing was cancelled. Ask whoever started it, or the person running the server.")
        job.cancel_event.set()
        if job.state == "queued":
            store.finish(job, "cancelled", "cancelled before it started")
        else:
            job.message = "cancelling: finishing the current step and saving a checkpoint"
    return True

