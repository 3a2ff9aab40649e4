"""Executors that spread a study's cells over every local device, or over a Ray cluster.

Both implement the ``run`` signature of ``core.study.graph.SerialExecutor``::

    run(cells, task, callbacks=None, on_event=None) -> {cell id: CellOutcome}

with the same per-cell semantics: a cell runs only after every dependency ended ``ok``; a
cell whose dependency did not takes that dependency's state without running; an exception
in a cell is that cell's ``failed`` outcome and the study goes on; ``should_stop()`` turns
every cell not yet finished into ``cancelled`` (running cells see it through their own
``callbacks.should_stop`` and stop at their next check); resume is the cells' own business
(each keeps its results on disk and returns at once when run again).

``LocalExecutor``: one worker *process* per lane. A lane is one GPU (by default every local
GPU), or a CPU lane with its own pinned number of torch threads. Separate processes, not
threads, because Accelerate's state, CUDA's current device and torch's thread pool are
process-wide: two cells that truly run at once must not share them. Each GPU lane's worker
sees only its GPU (``CUDA_VISIBLE_DEVICES``), so the cell is given ``device="cuda"`` and the
events name the physical GPU (``cuda:1``).

A cell kind listed in ``wide`` (e.g. ``{"cfg-train": 0}``, 0 = every lane) takes several
lanes at once: the executor waits until that many lanes are free, holds them, and runs the
cell in the first lane's worker with ``device`` set to all of them (``"cuda:0,cuda:1"``); the
cell function then starts its own multi-process job on those devices, e.g. with
``accelerate_launch_command`` below (``accelerate launch`` / DDP; the CFG training loop in
``core.train.cfg_unet`` already runs unchanged under it).

``RayExecutor``: each cell becomes a Ray task asking for ``num_cpus`` CPUs and, for cells with
``gpu=True`` when the cluster has GPUs, one GPU (Ray sets ``CUDA_VISIBLE_DEVICES`` for it). All
tasks are submitted at once, each given its dependencies' object refs, so Ray starts a cell when
they have ended; a task whose worker died (OOM kill, lost node) is retried ``max_retries`` times,
which is safe because cells resume from what they keep on disk.
The cell functions write into the study folder named in their payload, so on several machines
that folder must be on a filesystem every node mounts at the same path (NFS, a cluster FS).
Ray is optional: ``pip install ray``; without it ``RayExecutor`` raises a ``ConfigError``
that says so.

This module imports neither torch nor ray at import time (workers pin threads before torch
loads).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue as _queue
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

from core.callbacks import Callbacks
from core.study.graph import CANCELLED, FAILED, OK, Cell, CellEvent, CellOutcome, CellTask, Schedule, blocked_by, execute, topological
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# ------------------------------------------------------------------------------ lanes
@dataclass(frozen=True)
class Lane:
    label: str  # how events and outcomes name it: "cpu:0", "cuda:1"
    device: str  # what the cell function is given: "cpu" or "cuda" (its worker sees one GPU)
    env: tuple[tuple[str, str], ...] = ()  # set in the worker before anything imports torch
    threads: int | None = None  # torch threads in the worker (None = torch's default)


def cpu_lanes(n: int, threads: int | None = None) -> list[Lane]:
    """n CPU lanes, each pinned to ``threads`` torch threads (default: the cores split evenly)."""
    if n < 1:
        raise ConfigError(f"--lanes {n} is not a positive number of lanes.", "Use --lanes 2 (or more).")
    t = threads or max(1, (os.cpu_count() or 1) // n)
    return [Lane(f"cpu:{i}", "cpu", tuple((v, str(t)) for v in THREAD_VARS), t) for i in range(n)]


def gpu_lane(index: int) -> Lane:
    return Lane(f"cuda:{index}", "cuda", (("CUDA_VISIBLE_DEVICES", str(index)),))


def parse_devices(spec: str) -> list[Lane]:
    """``"cpu,cpu"`` -> two CPU lanes; ``"cuda:0,cuda:1"`` (or ``"cuda"`` = every GPU) -> GPU lanes."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"--devices '{spec}' names no device.", "Use e.g. --devices cpu,cpu or --devices cuda:0,cuda:1.")
    cpus = iter(cpu_lanes(parts.count("cpu")) if "cpu" in parts else [])
    lanes: list[Lane] = []
    for p in parts:
        if p == "cpu":
            lanes.append(next(cpus))
        elif p == "cuda":
            lanes += [gpu_lane(i) for i in range(_gpu_count())]
        elif p.startswith("cuda:") and p[5:].isdigit():
            lanes.append(gpu_lane(int(p[5:])))
        else:
            raise ConfigError(f"Unknown device '{p}' in --devices '{spec}'.", "Use cpu, cuda or cuda:N, comma-separated.")
    n_gpu = _gpu_count() if any(l.device == "cuda" for l in lanes) else 0
    bad = [l.label for l in lanes if l.device == "cuda" and int(l.label[5:]) >= n_gpu]
    if bad:
        raise ConfigError(f"--devices names {', '.join(bad)} but this machine has {n_gpu} GPU(s).",
                          "Name only existing GPUs, or use cpu lanes.")
    if len({l.label for l in lanes if l.device == "cuda"}) != sum(1 for l in lanes if l.device == "cuda"):
        raise ConfigError(f"--devices '{spec}' names a GPU twice.", "Name each GPU once; one cell runs per GPU at a time.")
    return lanes


def local_lanes() -> list[Lane]:
    """The default: one lane per local GPU; on a machine without one, a single CPU lane."""
    n = _gpu_count()
    return [gpu_lane(i) for i in range(n)] if n else cpu_lanes(1)


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:  # pragma: no cover - torch is a lab requirement
        return 0


def accelerate_launch_command(devices: str, module_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """(argv, extra env) that run ``python -m <module_args>`` as one process per device of a wide cell.

    ``devices`` is what a wide cell is given, e.g. ``"cuda:0,cuda:1"`` or ``"cpu:0,cpu:1"``. GPUs:
    ``accelerate launch --multi_gpu`` (DDP over NCCL) on exactly those GPUs. CPU lanes: ``torchrun
    --standalone`` (gloo), because ``accelerate launch --cpu`` starts a single process."""
    labels = [d for d in devices.split(",") if d]
    k = str(len(labels))
    env = {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if all(lab.startswith("cuda:") for lab in labels):
        env["CUDA_VISIBLE_DEVICES"] = ",".join(lab[5:] for lab in labels)
        argv = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", k, "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", *(["--multi_gpu"] if len(labels) > 1 else [])]
    else:
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", k]
    return argv + ["-m", *module_args], env


# ------------------------------------------------------------------------------ local
def _lane_worker(lane: Lane, inbox, outbox, stop) -> None:
    """One lane's process: pins threads/devices before torch loads, then runs cells until told to quit."""
    os.environ.update(dict(lane.env))
    if lane.threads:
        import torch  # imported after the env above, so its pools start with lane.threads

        torch.set_num_threads(lane.threads)
    while True:
        msg = inbox.get()
        if msg is None:
            return
        cell, task, device = msg

        def progress(d, t, m="", _id=cell.id):
            outbox.put(("progress", _id, d, t, m))

        cb = Callbacks(on_metrics=lambda row, _id=cell.id: outbox.put(("metrics", _id, row)),
                       on_preview=lambda p, _id=cell.id: outbox.put(("preview", _id, str(p))),
                       on_progress=progress, should_stop=stop.is_set)
        outcome = execute(task, cell, device, cb)
        outbox.put(("done", cell.id, outcome.to_dict()))


@contextlib.contextmanager
def _bare_main():
    """Start a spawned worker without re-running this process's ``__main__``.

    multiprocessing's spawn re-imports the parent's main script in the child (as __mp_main__) so
    that functions defined there can be unpickled. The worker's target lives in this module, so
    it needs nothing from __main__; and when the parent is the Streamlit server (or AppTest),
    __main__ is the page script app.py, which must not run again in a worker. An empty stand-in
    for the moment of start() keeps the child from importing it."""
    real = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if real is not None:
            sys.modules["__main__"] = real


class LocalExecutor:
    """Runs cells in parallel, one worker process per lane (GPU or pinned CPU lane) on this machine."""

    def __init__(self, lanes: list[Lane] | None = None, wide: dict[str, int] | None = None, poll_s: float = 0.1):
        self.lanes = list(lanes) if lanes else local_lanes()
        self.wide = dict(wide or {})  # cell kind -> lanes it takes (0 = all)
        self.poll_s = poll_s

    @property
    def device(self) -> str:  # what status/config show as "where"
        return ",".join(l.label for l in self.lanes)

    def _width(self, cell: Cell) -> int:
        if cell.kind not in self.wide:
            return 1
        k = self.wide[cell.kind]
        return len(self.lanes) if k <= 0 else min(k, len(self.lanes))

    def run(self, cells: list[Cell], task: CellTask, callbacks: Callbacks | None = None,
            on_event: CellEvent | None = None) -> dict[str, CellOutcome]:
        cb = callbacks or Callbacks()
        ctx = mp.get_context("spawn")  # never fork a process that may hold CUDA or torch threads
        stop = ctx.Event()
        outbox = ctx.Queue()
        workers: dict[int, tuple] = {}  # lane index -> (process, inbox)
        running: dict[str, tuple[list[int], float]] = {}  # cell id -> (lane indices, start time)
        cancelled = False

        def spawn(i: int):
            inbox = ctx.Queue()
            p = ctx.Process(target=_lane_worker, args=(self.lanes[i], inbox, outbox, stop), daemon=True,
                            name=f"lab-lane-{self.lanes[i].label}")
            with _bare_main():
                p.start()
            workers[i] = (p, inbox)

        def report(cell: Cell, o: CellOutcome) -> None:
            if on_event:
                on_event(cell.id, o.state, o.device or "", o.error or "")
            cb.progress(len(sched.outcomes), n, f"{cell.label or cell.id}: {o.state}" + (f" [{o.device}]" if o.device else ""))

        sched = Schedule(cells, report)
        by_id, n, finish, outcomes = sched.by_id, len(sched.order), sched.finish, sched.outcomes
        try:
            for i in range(len(self.lanes)):
                spawn(i)
            while not sched.done:
                if not cancelled and cb.stop_requested():
                    cancelled = True
                    stop.set()
                # start ready cells on free lanes, in dependency order (cells that will never run are settled
                # by the schedule); a wide cell that does not fit yet holds back the cells after it, so the
                # lanes drain for it (no starvation)
                busy = {i for lanes, _ in running.values() for i in lanes}
                free = [i for i in range(len(self.lanes)) if i not in busy]
                for cell in sched.runnable(cancelled):
                    k = self._width(cell)
                    if k > len(free):
                        break
                    take, free = free[:k], free[k:]
                    sched.take(cell)
                    label = ",".join(self.lanes[i].label for i in take)
                    device = self.lanes[take[0]].device if k == 1 else label
                    running[cell.id] = (take, time.time())
                    if on_event:
                        on_event(cell.id, "start", label, "")
                    workers[take[0]][1].put((cell, task, device))
                if not running:
                    continue
                try:
                    msg = outbox.get(timeout=self.poll_s)
                except _queue.Empty:
                    msg = None
                if msg is not None:
                    self._handle(msg, by_id, running, cb, finish, n, len(outcomes))
                # a worker that died mid-cell (killed, out of memory, a crash in C code): that cell fails,
                # the lane gets a fresh worker
                for cid, (lanes, t0) in list(running.items()):
                    p = workers[lanes[0]][0]
                    if not p.is_alive():
                        # drain what it managed to send, in case "done" raced the exit
                        while cid in running:
                            try:
                                self._handle(outbox.get(timeout=0.2), by_id, running, cb, finish, n, len(outcomes))
                            except _queue.Empty:
                                break
                        if cid in running:
                            del running[cid]
                            finish(by_id[cid], CellOutcome(FAILED, device=",".join(self.lanes[i].label for i in lanes),
                                                           error=f"the worker process of lane {self.lanes[lanes[0]].label} died "
                                                                 f"(exit code {p.exitcode}) while running this cell",
                                                           seconds=time.time() - t0))
                        spawn(lanes[0])
        finally:
            for p, inbox in workers.values():
                if p.is_alive():
                    inbox.put(None)
            deadline = time.time() + 10
            for p, _ in workers.values():
                p.join(timeout=max(0.1, deadline - time.time()))
                if p.is_alive():  # still inside a cell (interrupted study): stop it
                    p.terminate()
                    p.join(timeout=5)
        return outcomes

    def _handle(self, msg, by_id, running, cb: Callbacks, finish, n: int, done: int) -> None:
        kind, cid = msg[0], msg[1]
        cell = by_id[cid]
        where = ",".join(self.lanes[i].label for i in running.get(cid, ([], 0))[0])
        if kind == "progress":
            _, _, d, t, m = msg
            cb.progress(done, n, f"{cell.label or cid} [{where}]: {m or f'{d}/{t}'}")
        elif kind == "metrics":
            cb.metrics({**msg[2], "cell": cid})
        elif kind == "preview":
            cb.preview(Path(msg[2]))
        elif kind == "done" and cid in running:
            o = CellOutcome(**msg[2])
            o.device = where  # the lane label(s), not the in-worker "cuda"
            del running[cid]
            finish(cell, o)


# ------------------------------------------------------------------------------ ray
def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the optional package 'ray', which is not installed in this environment.",
                          "Install it with `pip install ray` (or run without --ray: cells then run on local devices).") from None
    return ray


def _ray_cell(task: CellTask, cell: Cell, threads: int | None, events, cwd: str, *upstream: dict) -> dict:
    """Body of one Ray task: pin threads, work in the driver's folder, say where it runs, run the cell.

    ``upstream`` are the outcomes of the cell's dependencies: Ray passes them in once those tasks
    ended, so Ray, not a loop here, decides when a cell may start. A cell whose dependency did not
    end ok returns that state at once, without running (and without a "start" event)."""
    import socket

    import ray

    blocked = blocked_by(cell, {d: CellOutcome(**o) for d, o in zip(cell.deps, upstream)})
    if blocked is not None:
        return blocked.to_dict()
    if os.path.isdir(cwd):  # relative paths in the payload (--out, --data-dir) mean what they meant to the driver
        os.chdir(cwd)
    if threads:
        for v in THREAD_VARS:
            os.environ[v] = str(threads)
        import torch

        torch.set_num_threads(threads)
    gpus = ray.get_gpu_ids()
    device = "cuda" if gpus else "cpu"
    where = f"{socket.gethostname()}/" + (f"cuda:{','.join(str(int(g)) for g in gpus)}" if gpus else f"cpu[pid {os.getpid()}]")
    if events is not None:
        events.put((cell.id, "start", where))
    o = execute(task, cell, device, Callbacks())
    o.device = where
    return o.to_dict()


class RayExecutor:
    """Runs each cell as a Ray task (``ray.init(address)``, or a local instance when address is None)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, threads: int | None = 1,
                 cpus_per_cell: float = 1, init_kwargs: dict | None = None, poll_s: float = 0.2, max_retries: int = 2):
        self.ray = _import_ray()
        self.address = address
        self.num_cpus = num_cpus  # only for a local instance
        self.threads = threads  # torch threads inside each task (Ray itself sets 1 per CPU asked)
        self.cpus_per_cell = cpus_per_cell
        self.init_kwargs = dict(init_kwargs or {})
        self.poll_s = poll_s
        # a cell whose worker died (OOM kill, node lost) runs again up to this many times: cells resume
        # from what they keep on disk. Exceptions raised by the cell itself are outcomes, never retried.
        self.max_retries = max_retries
        self.device = f"ray:{address or 'local'}"

    def _init(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        env = {"PYTHONPATH": str(ROOT)}  # the lab must import on every node (same path: shared filesystem)
        kw = dict(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
        if self.address:
            kw["address"] = self.address
        elif self.num_cpus:
            kw["num_cpus"] = self.num_cpus
        kw.update(self.init_kwargs)
        try:
            ray.init(**kw)
        except ConnectionError as exc:
            raise ConfigError(f"Could not reach a Ray cluster at '{self.address}' ({exc}).",
                              "Start one with `ray start --head` and pass its address (e.g. --ray 10.0.0.1:6379), "
                              "or pass --ray alone for a local instance.") from None

    def run(self, cells: list[Cell], task: CellTask, callbacks: Callbacks | None = None,
            on_event: CellEvent | None = None) -> dict[str, CellOutcome]:
        ray = self.ray
        self._init()
        from ray.util.queue import Queue

        cb = callbacks or Callbacks()
        order = topological(cells)
        n = len(order)
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        events = Queue(actor_options={"num_cpus": 0})
        remote = ray.remote(_ray_cell)
        # Every cell is submitted at once, with its dependencies' object refs as arguments: Ray starts
        # it when they have ended (whatever their state) and hands their outcomes in.
        refs: dict[str, object] = {}
        for cell in order:
            opts = {"num_cpus": self.cpus_per_cell, "num_gpus": 1 if (cell.gpu and has_gpu) else 0, "max_retries": self.max_retries}
            refs[cell.id] = remote.options(**opts).remote(task, cell, self.threads, events, os.getcwd(), *(refs[d] for d in cell.deps))
        cell_of = {ref: cell for cell, ref in zip(order, refs.values())}
        outcomes: dict[str, CellOutcome] = {}
        ended: dict[str, CellOutcome | BaseException] = {}  # what Ray returned, before it is reported in order
        started: set[str] = set()
        inflight = set(refs.values())
        cancelled = False

        def drain_events() -> None:
            while True:
                try:
                    cid, ev, where = events.get_nowait()
                except Exception:  # ray.util.queue.Empty
                    return
                started.add(cid)
                if on_event:
                    on_event(cid, ev, where, "")

        def settle(cell: Cell, got) -> CellOutcome:
            if not isinstance(got, BaseException):
                return CellOutcome(**got)
            if isinstance(got, ray.exceptions.TaskCancelledError):
                return CellOutcome(CANCELLED, error="cancelled while running" if cell.id in started else "cancelled before it started")
            # a task whose dependency's task failed is failed by Ray without running: it takes that dependency's state
            blocked = blocked_by(cell, outcomes)
            if blocked is not None:
                return blocked
            return CellOutcome(FAILED, error=f"Ray task failed (a dead worker is retried {self.max_retries} time(s)): {type(got).__name__}: {str(got)[:2000]}")

        try:
            while len(outcomes) < n:
                if not cancelled and cb.stop_requested():
                    cancelled = True
                    for ref in inflight:
                        ray.cancel(ref)  # interrupts the task; the cell keeps what it checkpointed
                if inflight:
                    ready, _ = ray.wait(list(inflight), num_returns=1, timeout=self.poll_s)
                    drain_events()
                    for ref in ready:
                        inflight.discard(ref)
                        try:
                            ended[cell_of[ref].id] = ray.get(ref)
                        except ray.exceptions.RayError as exc:  # TaskCancelledError is one too
                            ended[cell_of[ref].id] = exc
                # report in dependency order, so a cell's dependencies are settled before it
                for cell in order:
                    if cell.id not in outcomes and cell.id in ended and all(d in outcomes for d in cell.deps):
                        o = outcomes[cell.id] = settle(cell, ended[cell.id])
                        if on_event:
                            on_event(cell.id, o.state, o.device or "", o.error or "")
                        cb.progress(len(outcomes), n, f"{cell.label or cell.id}: {o.state}" + (f" [{o.device}]" if o.device else ""))
        finally:
            for ref in inflight:
                ray.cancel(ref, force=True)
            drain_events()
        return outcomes

    def shutdown(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()


# ------------------------------------------------------------------------------ choosing one
def executor_for(devices: str | None = None, lanes: int | None = None, ray: str | None = None,
                 ray_num_cpus: int | None = None, wide: dict[str, int] | None = None):
    """The executor the CLI options ask for, or None for the in-process serial one.

    ``--devices cpu,cpu`` / ``cuda:0,cuda:1`` / ``cuda`` (every GPU): a ``LocalExecutor`` over those lanes;
    ``--lanes N``: N CPU lanes, the cores split between them; ``--ray [ADDRESS]``: a ``RayExecutor``
    (``ray`` = "local" or "" starts a local instance)."""
    chosen = [name for name, v in (("--devices", devices), ("--lanes", lanes), ("--ray", ray)) if v not in (None, False)]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} were both given; they choose the executor in different ways.",
                          "Pass one of --devices, --lanes or --ray.")
    if ray is not None:
        return RayExecutor(address=None if ray in ("", "local") else ray, num_cpus=ray_num_cpus)
    if devices:
        return LocalExecutor(parse_devices(devices), wide=wide)
    if lanes is not None:
        return LocalExecutor(cpu_lanes(lanes), wide=wide)
    return None
