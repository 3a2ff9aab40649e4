"""The job manager: runs the lab's long work in background threads, one queue per device.

Every job is a run folder (``core.runs.Run``): the manager creates it ``queued``, a
worker thread picks it up, calls the job kind's *runner* with a :class:`JobContext`
(config, run folder, callbacks, resume flag, device) and records the outcome in
``status.json``. Pages only read jobs and runs; nothing here imports Streamlit.

* Two lanes per device. The training lane runs one job at a time; a second waits in its
  queue. The interactive lane takes short work (previews, small guidance sweeps: see
  ``INTERACTIVE``) so it never waits behind a training: while an interactive job runs,
  a training on the same device pauses between two steps (its ``should_stop`` callback
  blocks) and continues afterwards. Jobs never compute at the same time on one device, and
  only the training lane creates an Accelerator (its state is process-wide).
* Cancel is cooperative: ``cancel()`` sets a flag the runner polls via ``should_stop``;
  the training loops save a checkpoint before they return.
* Failures are captured: a ``LabError`` keeps its message, out-of-memory becomes a clear
  message with the fix, anything else keeps its traceback. The server keeps serving.
* Sessions apart (a server shared by a class): a job records its ``owner`` (the browser
  session that started it); ``cancel(run_id, owner=...)`` refuses another owner's job, and
  ``limits`` (core.serving.JobLimits) caps queued-or-running jobs per owner and per server
  before anything is created. ``admit`` lets the app refuse a config (data outside its roots)
  first. The CLI and tests build managers without either: unlimited, as before.
* Restart: runs found ``queued``/``running`` whose owner process is gone are marked
  ``interrupted`` on construction; ``resume()`` queues them again with ``resume=True``.
* Runners are registered by their owner with :func:`register_runner` (``core.job_runners``
  registers the lab's kinds when imported: whoever builds a manager for real work imports
  it first) and looked up when the job starts. Entries in ``RUNNERS`` override them, so
  tests can inject an instant fake; a kind with no runner fails with a message naming it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.callbacks import Callbacks
from core.errors import ConfigError, LabError
from core.paths import runs_dir
from core.runs import ACTIVE, META_KEYS, Run, list_runs
from core.serving import JobLimits

Runner = Callable[["JobContext"], Any]  # runner(ctx) -> optional result dict

# kind -> runner, as registered by the module that owns the kind (register_runner)
_REGISTERED: dict[str, Runner] = {}
# kind -> runner overriding the registered one; tests put instant fakes here.
RUNNERS: dict[str, Runner] = {}
FINAL = ("done", "failed", "cancelled", "interrupted")
RESUMABLE = ("interrupted", "cancelled", "failed")

_LIVE_MANAGERS: set[str] = set()  # tokens of JobManagers alive in this process
_STATUS_EVERY_S = 1.0  # how often progress is written to status.json (seconds)
TRAIN_LANE, INTERACTIVE_LANE = "train", "interactive"
ETA_WINDOW = 64  # progress reports the ETA's step time is taken from

# Interactive work, by kind: config -> True when the job is short enough for the interactive
# lane. The limits are stated where the predicates are registered (core.job_runners).
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


def register_runner(kind: str, fn: Runner) -> Runner:
    """Make ``fn`` the runner of job kind ``kind`` for every manager built without ``runners=``.

    The owner of a kind calls this at import (the manager imports no runner module itself,
    so the dependency points from the runners down to the manager). Returns ``fn``.
    """
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"Job kind {kind!r} must be a non-empty string.", "Register the runner under its run kind, e.g. 'classifier'.")
    if not callable(fn):
        raise ConfigError(f"The runner for job kind '{kind}' is not callable ({type(fn).__name__}).", "Pass a function runner(ctx).")
    _REGISTERED[kind] = fn
    return fn


def _no_runner(kind: str, known: list[str]) -> ConfigError:
    return ConfigError(
        f"No runner is registered for job kind '{kind}'.",
        f"Import the module that registers it (the app and the CLI import core.job_runners) or use one of: {', '.join(known) or 'none registered'}.",
    )


def default_devices() -> list[str]:
    """One worker per visible GPU, else one CPU worker."""
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:  # torch missing or CUDA broken: the CPU still works
        n = 0
    return [f"cuda:{i}" for i in range(n)] or ["cpu"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_oom(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU out-of-memory errors (torch raises several types)."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text or "can't allocate memory" in text


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
        # the callbacks' check: for a training-lane job it is also the yield point (see JobManager)
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
    ):
        """``limits``: jobs allowed per owner and server (None: unlimited). ``owner_fn``: the
        owner of a job submitted without one (the app: the current browser session). ``admit``:
        called with (kind, config) before a job is created; it raises a LabError to refuse."""
        self.root = Path(root) if root else runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.devices = list(devices or default_devices())
        self._runners = runners  # None: the module registry (registered runners + RUNNERS overrides)
        self.limits, self._owner_fn, self._admit = limits, owner_fn, admit
        self.token = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        lanes = [(d, lane) for d in self.devices for lane in (TRAIN_LANE, INTERACTIVE_LANE)]
        self._queues: dict[tuple[str, str], queue.Queue] = {k: queue.Queue() for k in lanes}
        self._running: dict[tuple[str, str], Job | None] = {k: None for k in lanes}
        # set while no interactive job runs on the device; a training waits on it between steps
        self._idle: dict[str, threading.Event] = {d: threading.Event() for d in self.devices}
        for e in self._idle.values():
            e.set()
        self._closed = False
        _LIVE_MANAGERS.add(self.token)
        self.interrupted = self.mark_interrupted()
        self._threads = []
        for d, lane in lanes:
            t = threading.Thread(target=self._worker, args=(d, lane), name=f"lab-jobs-{d}-{lane}", daemon=True)
            t.start()
            self._threads.append(t)

    # -- restart ---------------------------------------------------------------------
    def _owner_alive(self, owner: str | None) -> bool:
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

    # -- registry ----------------------------------------------------------------------
    def _registry(self) -> dict[str, Runner]:
        if self._runners is not None:
            return dict(self._runners)
        return {**_REGISTERED, **RUNNERS}

    def runner_for(self, kind: str) -> Runner | None:
        return self._registry().get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._registry())

    # -- submitting --------------------------------------------------------------------
    def _pick_device(self, device: str | None) -> str:
        if device is not None:
            if device not in self._queues:
                raise ConfigError(f"Unknown device '{device}'.", f"Choose one of: {', '.join(self.devices)}.")
            return device
        with self._lock:
            load = {d: len(self._ahead(d, TRAIN_LANE)) for d in self.devices}
        return min(self.devices, key=lambda d: (load[d], self.devices.index(d)))

    def _ahead(self, device: str, lane: str) -> list[Job]:
        """Queued or running jobs of one lane on one device (cancelled ones are not counted)."""
        return [j for j in self._jobs.values() if j.device == device and j.lane == lane and j.active]

    def _owner(self, owner: str | None) -> str | None:
        return owner if owner is not None or self._owner_fn is None else self._owner_fn()

    def _check_limits(self, lane: str, owner: str | None) -> None:
        """Raise ConfigError when one more ``lane`` job of ``owner`` would pass ``limits`` (hold the lock)."""
        if self.limits is None:
            return
        same = [j for j in self._jobs.values() if j.active and j.lane == lane]
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
        if self.runner_for(kind) is None:
            raise _no_runner(kind, self.kinds())
        device = self._pick_device(device)
        lane = lane or lane_for(kind, config)
        if lane not in (TRAIN_LANE, INTERACTIVE_LANE):
            raise ConfigError(f"Unknown lane '{lane}'.", f"Use '{TRAIN_LANE}' or '{INTERACTIVE_LANE}'.")
        if self._admit is not None:
            self._admit(kind, config)
        owner = self._owner(owner)
        with self._lock:  # the count and the enqueue together, so two sessions cannot both take the last place
            self._check_limits(lane, owner)
            run = Run.create(kind, config, root=self.root, name=name, page=page, device=device)
            return self._enqueue(run, kind, device, resume=False, lane=lane, owner=owner)

    def resume(self, run_id: str, device: str | None = None, owner: str | None = None) -> Job:
        """Queue an interrupted, cancelled or failed run again, continuing from its checkpoint."""
        run = Run(self.root / run_id)
        if not run.exists():
            raise ConfigError(f"Run {run_id} no longer exists (its folder was removed).", "Pick another run from the list.")
        state = run.status.get("state")
        with self._lock:
            live = self._jobs.get(run_id)
            if live is not None and live.active:
                raise ConfigError(f"Run {run_id} is already {live.state}.", "Wait for it to finish, or cancel it first.")
        if state not in RESUMABLE:
            raise ConfigError(f"Run {run_id} is '{state}' and cannot be resumed.", "Only interrupted, cancelled or failed runs can be resumed.")
        kind = run.kind
        if self.runner_for(kind) is None:
            raise _no_runner(kind, self.kinds())
        config = {k: v for k, v in run.config.items() if k not in META_KEYS}
        if self._admit is not None:
            self._admit(kind, config)
        lane, owner = lane_for(kind, config), self._owner(owner)
        with self._lock:
            self._check_limits(lane, owner)
            return self._enqueue(run, kind, self._pick_device(device), resume=True, lane=lane, owner=owner)

    def _enqueue(self, run: Run, kind: str, device: str, resume: bool, lane: str = TRAIN_LANE, owner: str | None = None) -> Job:
        job = Job(run=run, kind=kind, device=device, resume=resume, lane=lane, owner=owner)
        with self._lock:
            ahead = len(self._ahead(device, lane))
            where = f"{device}" + (" (interactive lane)" if lane == INTERACTIVE_LANE else "")
            job.message = f"queued on {where}" + (f" behind {ahead} job(s)" if ahead else "")
            run.set_status("queued", message=job.message, owner=self.token, device=device, lane=lane, error=None, traceback=None)
            self._jobs[run.id] = job
            self._queues[(device, lane)].put(job)
        return job

    # -- control -----------------------------------------------------------------------
    def cancel(self, run_id: str, owner: str | None = None) -> bool:
        """Ask a job to stop. A queued job is cancelled at once; a running one at its next check.

        With ``owner`` (the app passes its browser session), a job another owner started is
        refused with a ConfigError; without it (the CLI, shutdown) any job may be cancelled.
        """
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None or not job.active:
                return False
            if owner is not None and job.owner is not None and job.owner != owner:
                raise ConfigError(f"Job {run_id} was started in another browser session; only that session can cancel it.",
                                  "Nothing was cancelled. Ask whoever started it, or the person running the server.")
            job.cancel_event.set()
            if job.state == "queued":
                self._finish(job, "cancelled", "cancelled before it started")
            else:
                job.message = "cancelling: finishing the current step and saving a checkpoint"
        return True

    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.submitted, reverse=True)

    def active(self) -> list[Job]:
        return [j for j in self.jobs() if j.active]

    def get(self, run_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(run_id)

    def wait(self, run_id: str, timeout: float = 60.0) -> Job:
        """Block until a job leaves queued/running (tests and the CLI)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.get(run_id)
            if job is not None and not job.active:
                return job
            time.sleep(0.02)
        raise TimeoutError(f"job {run_id} still {self.get(run_id).state if self.get(run_id) else '?'} after {timeout}s")

    def shutdown(self, cancel_running: bool = True, timeout: float = 10.0) -> None:
        """Stop the workers (tests). Queued jobs are cancelled; running ones asked to stop."""
        self._closed = True
        for job in self.active():
            if job.state == "queued" or cancel_running:
                self.cancel(job.id)
        for e in self._idle.values():
            e.set()
        for q in self._queues.values():
            q.put(None)
        for t in self._threads:
            t.join(timeout)
        _LIVE_MANAGERS.discard(self.token)

    # -- the worker ----------------------------------------------------------------------
    def _callbacks(self, job: Job) -> Callbacks:
        def on_progress(done: int, total: int, message: str = "") -> None:
            now = time.time()
            job.note_progress(done, now)
            job.step, job.total = int(done), int(total)
            if message and not job.cancel_event.is_set():
                job.message = message
            if now - job._last_write >= _STATUS_EVERY_S or done >= total:
                job._last_write = now
                job.run.set_status(step=job.step, total=job.total, message=job.message, eta_s=job.eta_s)

        def on_metrics(row: dict) -> None:
            job.latest_metrics = dict(row)

        def on_preview(path: Path) -> None:
            job.latest_preview = Path(path)

        if job.lane == INTERACTIVE_LANE:
            return Callbacks(on_metrics=on_metrics, on_preview=on_preview, on_progress=on_progress, should_stop=job.cancel_event.is_set)

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

        return Callbacks(on_metrics=on_metrics, on_preview=on_preview, on_progress=on_progress, should_stop=should_stop)

    def _finish(self, job: Job, state: str, message: str, error: str | None = None, tb: str | None = None) -> None:
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

    def _worker(self, device: str, lane: str) -> None:
        q = self._queues[(device, lane)]
        while True:
            job = q.get()
            if job is None:
                return
            if job.state != "queued":  # cancelled while waiting
                continue
            with self._lock:
                self._running[(device, lane)] = job
            if lane == INTERACTIVE_LANE:
                self._idle[device].clear()  # the training on this device pauses at its next step
            try:
                self._execute(job)
            finally:
                with self._lock:
                    self._running[(device, lane)] = None
                if lane == INTERACTIVE_LANE and q.empty():
                    self._idle[device].set()

    def _execute(self, job: Job) -> None:
        run = job.run
        if not run.exists():
            self._finish(job, "failed", "the run folder was removed before the job started", error="run folder removed")
            return
        with self._lock:  # status.json first, then the state others read: whoever sees "running" finds it on disk
            if job.state != "queued":  # cancelled between the queue and here
                return
            started = time.time()
            run.set_status("running", message="starting", owner=self.token, device=job.device, started=started)
            job.state, job.started, job.message = "running", started, "starting"
        config = {k: v for k, v in run.config.items() if k not in META_KEYS}
        ctx = JobContext(run=run, config=config, callbacks=self._callbacks(job), resume=job.resume, device=job.device, job=job)
        try:
            runner = self.runner_for(job.kind)
            if runner is None:
                raise _no_runner(job.kind, self.kinds())
            job.result = runner(ctx)
        except ImportError as exc:
            msg = f"This job needs a part of the lab that is not available yet ({type(exc).__name__}: {exc})."
            self._finish(job, "failed", msg, error=msg, tb=traceback.format_exc())
        except LabError as exc:
            self._finish(job, "failed", str(exc), error=str(exc), tb=traceback.format_exc())
        except BaseException as exc:  # noqa: BLE001  a job must never take the server down
            if type(exc).__name__ == "Cancelled":  # core.generators.base.Cancelled and friends
                self._finish(job, "cancelled", "cancelled; the last checkpoint was kept")
            elif is_oom(exc):
                msg = (
                    f"Out of memory on {job.device} ({type(exc).__name__}: {str(exc)[:200]}). "
                    "Fix: lower the batch size or pick a smaller preset, then resume; the last checkpoint was kept and no other run was touched."
                )
                self._finish(job, "failed", msg, error=msg, tb=traceback.format_exc())
            else:
                msg = f"{type(exc).__name__}: {exc}"
                self._finish(job, "failed", f"failed: {msg}", error=msg, tb=traceback.format_exc())
        else:
            if job.cancel_event.is_set():
                self._finish(job, "cancelled", "cancelled; the last checkpoint was kept")
            else:
                if job.total:
                    job.step = job.total
                self._finish(job, "done", self._done_message(job))
        finally:
            self._release_memory(job.device)

    @staticmethod
    def _done_message(job: Job) -> str:
        st = job.run.status
        if st.get("state") == "done" and st.get("message"):
            return st["message"]  # the loop's own summary (e.g. "test accuracy 0.93")
        return "done"

    @staticmethod
    def _release_memory(device: str) -> None:
        if device.startswith("cuda"):
            try:
                import torch

                torch.cuda.empty_cache()
            except Exception:
                pass
