"""JobManager: the one object the app, the CLI and the tests hold; it admits jobs and hands them on.

Submitting checks the job (a runner for its kind, the device, the lane, ``admit``, the
per-owner and per-server ``limits``) and only then creates its run folder and queues it
(core.jobs.queues). Running, recording and cancelling are delegated to the other rooms of
core.jobs.
"""

from __future__ import annotations

import atexit
import os
from typing import Callable

from core.errors import ConfigError
from core.jobs.cancel import cancel as cancel_job
from core.jobs.execute import Executor
from core.jobs.interactive import InteractiveLane, lane_for
from core.jobs.job import INTERACTIVE_LANE, RESUMABLE, TRAIN_LANE, Job
from core.jobs.queues import LaneQueues, default_devices
from core.jobs.kinds import Runner, RunnerTable
from core.jobs.records import JobStore
from core.store.runs import META_KEYS, Run
from core.serving.server import JobLimits


class JobManager:
    """Background job runner shared by every browser session of one server process."""

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        devices: list[str] | None = None,
        runners: dict[str, Runner] | None = None,
        limits: JobLimits | None = None,
        owner_fn: Callable[[], str | None] | None = None,
        admit: Callable[[str, dict], None] | None = None,
        budget: Callable[..., None] | None = None,
    ):
        """``limits``: jobs allowed per owner and server (None: unlimited). ``owner_fn``: the
        owner of a job submitted without one (the app: the current browser session). ``admit``:
        called with (kind, config) before a job is created; it raises a LabError to refuse. ``budget``:
        called under the lock with (kind, config, owner, lane, device, the jobs queued or running) so
        server-wide budgets count what is already admitted (core.serving.admission); it raises to refuse."""
        self.store = JobStore(root)
        self.root, self.token = self.store.root, self.store.token
        self.devices = list(devices or default_devices())
        self._runners = RunnerTable(runners)
        self.limits, self._owner_fn, self._admit, self._budget = limits, owner_fn, admit, budget
        self._interactive = InteractiveLane(self.devices)
        executor = Executor(self.store, self._runners, self._interactive)
        self._queues = LaneQueues(self.devices, self.store, self._interactive, executor)
        self._closed = False
        self.interrupted = self.store.open()
        self._queues.start()
        _LIVE.add(self)

    def mark_interrupted(self) -> list[str]:
        """Runs left queued/running by a process (or manager) that is gone -> ``interrupted``."""
        return self.store.mark_interrupted()

    def runner_for(self, kind: str) -> Runner | None:
        return self._runners.runner_for(kind)

    def kinds(self) -> list[str]:
        return self._runners.kinds()

    # -- submitting --------------------------------------------------------------------
    def _owner(self, owner: str | None) -> str | None:
        return owner if owner is not None or self._owner_fn is None else self._owner_fn()

    def _check_budget(self, kind: str, config: dict, owner: str | None, lane: str, device: str) -> None:
        """Raise when ``budget`` refuses one more job, given every job queued or running (hold the lock)."""
        if self._budget is not None:
            self._budget(kind, config, owner, lane, device, [j for j in self.store.jobs() if j.active])

    def _check_limits(self, lane: str, owner: str | None) -> None:
        """Raise ConfigError when one more ``lane`` job of ``owner`` would pass ``limits`` (hold the lock)."""
        if self.limits is None:
            return
        same = self.store.active(lane)
        mine = len([j for j in same if owner is not None and j.owner == owner])
        why = self.limits.refusal(lane == INTERACTIVE_LANE, mine, len(same))
        if why:
            raise ConfigError(*why)

    def submit(self, kind: str, config: dict, name: str | None = None, device: str | None = None, lane: str | None = None,
               owner: str | None = None, page: str | None = None) -> Job:
        """Create a run folder for ``kind`` and queue it in its lane (``lane_for`` unless given). Returns at once.
        ``page``: the app page that asked, recorded in the run's provenance."""
        if self._closed:
            raise ConfigError("The job manager has been shut down.", "Restart the app.")
        self._runners.require(kind)
        device = self._queues.pick_device(device)
        lane = lane or lane_for(kind, config)
        if lane not in (TRAIN_LANE, INTERACTIVE_LANE):
            raise ConfigError(f"Unknown lane '{lane}'.", f"Use '{TRAIN_LANE}' or '{INTERACTIVE_LANE}'.")
        if self._admit is not None:
            self._admit(kind, config)
        owner = self._owner(owner)
        with self.store.lock:  # the count and the enqueue together, so two sessions cannot both take the last place
            self._check_limits(lane, owner)
            self._check_budget(kind, config, owner, lane, device)
            run = Run.create(kind, config, root=self.root, name=name, page=page, device=device)
            if owner is not None:
                run.set_owner(owner)  # on disk, so ownership outlives this process (resume, visibility)
            return self._queues.enqueue(Job(run=run, kind=kind, device=device, resume=False, lane=lane, owner=owner))

    def resume(self, run_id: str, device: str | None = None, owner: str | None = None) -> Job:
        """Queue an interrupted, cancelled or failed run again, continuing from its checkpoint.

        With ``owner`` (the app on a shared server: the identity asking), only the run's own
        owner (``Run.owner``) may resume it, and the job keeps that owner: resuming never
        transfers a run. Without it (the CLI, a one-user app) the job's owner is ``owner_fn``'s."""
        run = Run(self.root / run_id)
        if not run.exists():
            raise ConfigError(f"Run {run_id} no longer exists (its folder was removed).", "Pick another run from the list.")
        if owner is not None and run.owner != owner:
            raise ConfigError(f"Run {run_id} was started by someone else; only its owner can resume it.",
                              "Nothing was resumed. Start a run of your own with the same settings instead.")
        state = run.status.get("state")
        with self.store.lock:
            live = self.store.get(run_id)
            if live is not None and live.active:
                raise ConfigError(f"Run {run_id} is already {live.state}.", "Wait for it to finish, or cancel it first.")
        if state not in RESUMABLE:
            raise ConfigError(f"Run {run_id} is '{state}' and cannot be resumed.", "Only interrupted, cancelled or failed runs can be resumed.")
        kind = run.kind
        self._runners.require(kind)
        config = {k: v for k, v in run.config.items() if k not in META_KEYS}
        if self._admit is not None:
            self._admit(kind, config)
        lane, owner = lane_for(kind, config), (owner if owner is not None else self._owner(None))
        with self.store.lock:
            self._check_limits(lane, owner)
            device = self._queues.pick_device(device)
            self._check_budget(kind, config, owner, lane, device)
            job = Job(run=run, kind=kind, device=device, resume=True, lane=lane, owner=owner)
            return self._queues.enqueue(job)

    # -- control and reading -------------------------------------------------------------
    def cancel(self, run_id: str, owner: str | None = None) -> bool:
        """Ask a job to stop (core.jobs.cancel); with ``owner``, another owner's job is refused."""
        return cancel_job(self.store, run_id, owner)

    def jobs(self) -> list[Job]:
        return self.store.jobs()

    def active(self) -> list[Job]:
        return [j for j in self.jobs() if j.active]

    def get(self, run_id: str) -> Job | None:
        return self.store.get(run_id)

    def wait(self, run_id: str, timeout: float = 60.0) -> Job:
        """Block until a job leaves queued/running (tests and the CLI)."""
        return self.store.wait(run_id, timeout)

    def shutdown(self, cancel_running: bool = True, timeout: float = 10.0) -> None:
        """Stop the workers (tests). Queued jobs are cancelled; running ones asked to stop."""
        self._closed = True
        _LIVE.discard(self)
        for job in self.active():
            if job.state == "queued" or cancel_running:
                self.cancel(job.id)
        self._interactive.release_all()
        self._queues.stop(timeout)
        self.store.close()


EXIT_WAIT_S = 30.0  # how long, at interpreter exit, each worker gets to reach its next stop check and save
_LIVE: "set[JobManager]" = set()  # strong references: a manager dropped by its owner (a cleared cache) still has live workers


@atexit.register
def _shutdown_at_exit() -> None:
    """At interpreter exit, cancel every live manager's jobs and join its workers. The workers are daemon
    threads: one still inside a torch op when Python finalizes is ended by pthread_exit, which unwinds
    through a noexcept C++ frame and aborts the whole process (exit 134, nothing saved). Stopping them
    first lets the loops save their checkpoint, and the runs read "cancelled", resumable."""
    for manager in list(_LIVE):
        manager.shutdown(cancel_running=True, timeout=EXIT_WAIT_S)
