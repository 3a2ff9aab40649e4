"""Cells: the independent units of work a study splits into, and the executors that run them.

A study is a graph of cells, e.g. for one seed::

    cfg-train seed0  ->  fill cfg@w=7.5 seed0  ->  classifier cfg@w=7.5 × resnet18 seed0
                                                ->  classifier cfg@w=7.5 × resnet50 seed0

Each cell is named by a ``Cell`` (id, kind, dependencies, whether it wants a GPU) and run
by a ``CellTask``: an importable function named as ``"package.module:function"`` plus a
JSON-able payload, so the same cell runs in this process, in a worker process on another
GPU, or as a Ray task on another machine. The function is called as::

    function(payload, cell, device, callbacks) -> dict   # the cell's result

and keeps its own results on disk (the study folder), so a cell that already finished
returns at once when run again (resume). It raises ``Unavailable`` when it cannot run on
this machine, ``Cancelled`` when ``callbacks.should_stop()`` turned true, and anything else
is a failure whose text is kept.

Outcomes: ``ok``, ``failed`` (with the error), ``unavailable`` (with the reason) and
``cancelled``. A cell whose dependency did not end ``ok`` is not run: it takes the state
of that dependency (``failed``/``unavailable``/``cancelled``) and names it in its error.

This module holds the contract and the in-process ``SerialExecutor``; executors that
spread cells over several devices or a cluster implement the same ``run`` signature.
"""

from __future__ import annotations

import importlib
import time
from graphlib import CycleError, TopologicalSorter
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from core.callbacks import Callbacks
from core.errors import Cancelled, LabError, Unavailable

OK, FAILED, UNAVAILABLE, CANCELLED = "ok", "failed", "unavailable", "cancelled"
STATES = (OK, FAILED, UNAVAILABLE, CANCELLED)

# (cell id, event, device, message): event is "start" or one of STATES
CellEvent = Callable[[str, str, str, str], None]


@dataclass(frozen=True)
class Cell:
    id: str  # unique within its study and file-name safe, e.g. "clf__cfg_w7.5__resnet18__seed0"
    kind: str  # what it does, e.g. "cfg-train" | "fill" | "classifier"
    deps: tuple[str, ...] = ()  # ids of cells that must end "ok" before this one starts
    gpu: bool = False  # wants an accelerator when the machine has one
    label: str = ""  # a human-readable name for progress and status ("cfg@w=7.5 × resnet18, seed 0")


@dataclass(frozen=True)
class CellTask:
    target: str  # "package.module:function", called as function(payload, cell, device, callbacks) -> dict
    payload: dict = field(default_factory=dict)  # JSON-able; the same for every cell of one run

    def resolve(self) -> Callable[..., dict]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


@dataclass
class CellOutcome:
    state: str  # one of STATES
    result: dict | None = None  # what the cell function returned (state "ok")
    error: str | None = None  # the error text (failed) or the reason (unavailable/cancelled)
    device: str | None = None  # where it ran
    seconds: float = 0.0  # wall-clock time of the cell function

    def to_dict(self) -> dict:
        return asdict(self)


def _sorter(cells: list[Cell]) -> TopologicalSorter:
    """The cells' graph as a ``graphlib.TopologicalSorter`` (nodes added in the given order, so ties
    keep it). Unique ids and known dependencies are checked here: the sorter would take an unknown
    id for a new node without dependencies, i.e. run the cell before what it really needs."""
    by_id = {c.id: c for c in cells}
    if len(by_id) != len(cells):
        raise ValueError("cell ids must be unique")
    ts: TopologicalSorter = TopologicalSorter()
    for c in cells:
        missing = [d for d in c.deps if d not in by_id]
        if missing:
            raise ValueError(f"cell {c.id} depends on unknown cell(s) {missing}")
        ts.add(c.id)
    for c in cells:
        ts.add(c.id, *c.deps)
    return ts


def topological(cells: list[Cell]) -> list[Cell]:
    """The cells in an order where every dependency comes first; a cycle or an unknown id is a bug."""
    by_id = {c.id: c for c in cells}
    try:
        return [by_id[i] for i in _sorter(cells).static_order()]
    except CycleError as exc:
        raise ValueError(f"dependency cycle through {exc.args[1][0]}") from None


class Schedule:
    """The one readiness loop every in-house executor shares: which cells may start now.

    ``runnable()`` first settles the ready cells that will never run (a dependency did not end
    ok: they take its state; or the study was cancelled) through ``finish``, then returns the
    rest, in the graph's order. An executor ``take``s the cells it starts and ``finish``es each
    with its outcome, which makes its dependents ready (``graphlib.TopologicalSorter``)."""

    def __init__(self, cells: list[Cell], on_finish: Callable[[Cell, "CellOutcome"], None] | None = None):
        self.order = topological(cells)
        self.rank = {c.id: i for i, c in enumerate(self.order)}
        self.by_id = {c.id: c for c in self.order}
        self.outcomes: dict[str, CellOutcome] = {}
        self.on_finish = on_finish
        self._ts = _sorter(cells)
        self._ts.prepare()
        self._ready: list[Cell] = []
        self._collect()

    def _collect(self) -> None:
        self._ready = sorted(self._ready + [self.by_id[i] for i in self._ts.get_ready()], key=lambda c: self.rank[c.id])

    @property
    def done(self) -> bool:
        return len(self.outcomes) == len(self.order)

    def runnable(self, cancelled: bool = False) -> list[Cell]:
        while True:
            settled = False
            for cell in list(self._ready):
                o = CellOutcome(CANCELLED, error="cancelled before it started") if cancelled else blocked_by(cell, self.outcomes)
                if o is not None:
                    self._ready.remove(cell)
                    self.finish(cell, o)
                    settled = True
            if not settled:
                return list(self._ready)

    def take(self, cell: Cell) -> None:
        self._ready.remove(cell)

    def finish(self, cell: Cell, outcome: "CellOutcome") -> None:
        self.outcomes[cell.id] = outcome
        self._ts.done(cell.id)
        self._collect()
        if self.on_finish:
            self.on_finish(cell, outcome)


def blocked_by(cell: Cell, outcomes: dict[str, CellOutcome]) -> CellOutcome | None:
    """The outcome a cell takes without running when a dependency did not end ok, else None."""
    for d in cell.deps:
        o = outcomes.get(d)
        if o is not None and o.state != OK:
            why = o.error or o.state
            return CellOutcome(o.state, error=f"{d} {o.state}: {why}" if o.state != CANCELLED else "cancelled")
    return None


def execute(task: CellTask, cell: Cell, device: str, callbacks: Callbacks) -> CellOutcome:
    """Run one cell here and turn whatever it raised into an outcome (never raises, except KeyboardInterrupt)."""
    t0 = time.time()
    try:
        result = task.resolve()(task.payload, cell, device, callbacks)
        return CellOutcome(OK, result=result or {}, device=device, seconds=time.time() - t0)
    except Unavailable as exc:
        return CellOutcome(UNAVAILABLE, error=str(exc), device=device, seconds=time.time() - t0)
    except Cancelled as exc:
        return CellOutcome(CANCELLED, error=str(exc) or "cancelled", device=device, seconds=time.time() - t0)
    except LabError as exc:
        return CellOutcome(FAILED, error=f"{type(exc).__name__}: {exc}", device=device, seconds=time.time() - t0)
    except Exception as exc:  # a bug or a crash in the cell: kept with its traceback, the study goes on
        tb = traceback.format_exc(limit=8)
        return CellOutcome(FAILED, error=f"{type(exc).__name__}: {exc}\n{tb}", device=device, seconds=time.time() - t0)


class SerialExecutor:
    """Runs every cell in this process, one after the other, on one device."""

    def __init__(self, device: str = "cpu"):
        self.device = device

    def run(self, cells: list[Cell], task: CellTask, callbacks: Callbacks | None = None,
            on_event: CellEvent | None = None) -> dict[str, CellOutcome]:
        cb = callbacks or Callbacks()

        def report(cell: Cell, o: CellOutcome) -> None:
            if on_event:
                on_event(cell.id, o.state, o.device or "", o.error or "")
            cb.progress(len(sched.outcomes), n, f"{cell.label or cell.id}: {o.state}")

        sched = Schedule(cells, report)
        n = len(sched.order)
        while ready := sched.runnable(cancelled=cb.stop_requested()):
            cell = ready[0]
            sched.take(cell)
            sched.finish(cell, self._one(task, cell, cb, on_event, len(sched.outcomes), n))
        return sched.outcomes

    def _one(self, task: CellTask, cell: Cell, cb: Callbacks, on_event: CellEvent | None, i: int, n: int) -> CellOutcome:
        if on_event:
            on_event(cell.id, "start", self.device, "")
        inner = Callbacks(on_metrics=cb.on_metrics, on_preview=cb.on_preview, should_stop=cb.should_stop,
                          on_progress=lambda d, t, m="": cb.progress(i, n, f"{cell.label or cell.id}: {m or f'{d}/{t}'}"))
        return execute(task, cell, self.device, inner)


def summarize(outcomes: dict[str, CellOutcome]) -> dict[str, Any]:
    """Counts per state, e.g. {"ok": 10, "failed": 1, "unavailable": 2, "cancelled": 0}."""
    counts = {s: 0 for s in STATES}
    for o in outcomes.values():
        counts[o.state] += 1
    return counts
