"""Running a study: its folder (open_study), the cells' status, ``run_study`` and ``load_results``."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from core.store.atomic import atomic_write, atomic_write_json, read_json
from core.callbacks import Callbacks
from core.study.graph import Cell, CellTask, SerialExecutor
from core.errors import ConfigError, LabError
from core.study.gate import regate_words, thresholds
from core.store.runs import Run
from core.study.config import KIND, StudyConfig
from core.study.lock import one_run_per_folder
from core.study.plan import plan_study


def open_study(cfg: StudyConfig, out_dir: str | Path, device: str | None = None) -> Run:
    """The study's run folder: new, or the same study to resume. Anything else is refused untouched."""
    out_dir = Path(out_dir)
    saved = read_json(out_dir / "config.json")
    if saved is not None:
        if saved.get("kind") != KIND:
            raise ConfigError(f"{out_dir} holds a '{saved.get('kind')}' run, not a study.", "Choose another --out folder; nothing was changed.")
        try:
            same = StudyConfig.from_dict(saved).identity() == cfg.identity()
        except LabError:
            same = False
        if not same:
            raise ConfigError(
                f"{out_dir} holds another study ('{saved.get('name')}') with a different config; its results were left untouched.",
                "Choose a new --out folder, or rerun with exactly that study's config to resume it.",
            )
    run = Run.open_or_create(out_dir, KIND, cfg.to_dict(), resume=True, device=device)  # a new study records its provenance
    if saved is not None and thresholds(saved.get("gate")) != thresholds(cfg.gate):
        _regate(run, saved, cfg)
    return run


def _regate(run: Run, saved: dict, cfg: StudyConfig) -> None:
    """The same study resumed with other [gate] thresholds: config.json takes the new ones (the rows
    are rebuilt with them) and keeps a line of what changed and when, in ``regated``."""
    change = {"from": thresholds(saved.get("gate")), "to": thresholds(cfg.gate), "at": datetime.now(timezone.utc).isoformat()}
    atomic_write_json(run.path / "config.json", {**saved, "gate": dict(cfg.gate), "regated": [*saved.get("regated", []), change]})
    logging.getLogger(__name__).warning("%s: re-gated (%s); its rows are rebuilt with the new thresholds", run.path.name, regate_words(change))


class _CellStatus:
    """Keeps every cell's state and device in the study's status.json (the executors' on_event)."""

    def __init__(self, run: Run, cells: list[Cell]):
        self.run = run
        self.cells = {c.id: {"kind": c.kind, "label": c.label, "state": "pending", "device": None} for c in cells}
        run.set_status(cells=self.cells)

    def on_event(self, cid: str, event: str, device: str, message: str) -> None:
        entry = self.cells[cid]
        entry["state"] = "running" if event == "start" else event
        entry["device"] = device or entry["device"]
        if message:
            entry["error" if event != "unavailable" else "reason"] = message[:2000]
        self.run.set_status(cells=self.cells, message=f"{entry['label'] or cid}: {entry['state']}" + (f" on {device}" if device else ""))


def study_state(outcomes: dict) -> str:
    """cancelled if any cell was; failed if any cell failed (the study had failures); else done."""
    states = {o.state for o in outcomes.values()}
    return "cancelled" if "cancelled" in states else "failed" if "failed" in states else "done"


def default_device(cfg: StudyConfig) -> str:
    return cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")


@one_run_per_folder  # a second process on the same folder is refused, naming the holder
def run_study(cfg: StudyConfig, out_dir: str | Path, callbacks: Callbacks | None = None, executor=None) -> pd.DataFrame:
    """Run (or resume) a study in ``out_dir``; writes results.csv/results.json and returns the table.

    ``executor`` runs the cells (default: one after the other in this process); anything with
    ``run(cells, task, callbacks, on_event)`` (core.study.graph) will do. Failed cells do not stop
    the others; the study's state is then "failed", after every row was written."""
    from core.data.loading import load_dataset
    from core.data.profiles import target_counts
    from core.study.rows import aggregate, rows_frame

    cfg.validate()
    out_dir = Path(out_dir)
    cb = callbacks or Callbacks()
    run = open_study(cfg, out_dir, device=getattr(executor, "device", None) or default_device(cfg))
    run.set_status("running", message="planning")
    ds = load_dataset(cfg.data)
    plan = plan_study(cfg, target_counts(ds.train.counts(), cfg.data))
    status = _CellStatus(run, plan.cells)
    last = [0.0]

    def progress(d: int, t: int, m: str = "") -> None:
        cb.progress(d, t, m)
        if time.time() - last[0] >= 1.0:  # status.json at most once a second
            last[0] = time.time()
            run.set_status(step=d, total=t, message=m)

    task = CellTask("core.study.cells:run_cell", {"config": cfg.to_dict(), "root": str(out_dir), "specs": plan.specs})
    executor = executor or SerialExecutor(default_device(cfg))
    t0 = time.time()
    try:
        outcomes = executor.run(plan.cells, task, Callbacks(on_metrics=cb.on_metrics, should_stop=cb.should_stop, on_progress=progress),
                                status.on_event)
    except BaseException as exc:
        run.set_status("failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted", error=f"{type(exc).__name__}: {exc}")
        raise
    rows, notes = aggregate(cfg, plan, outcomes, test_size=len(ds.test), regated=(read_json(out_dir / "config.json") or {}).get("regated"))
    state = study_state(outcomes)
    frame = rows_frame(rows)
    counts = {s: sum(1 for o in outcomes.values() if o.state == s) for s in ("ok", "failed", "unavailable", "cancelled")}
    payload = {"study": cfg.name, "budget": cfg.budget, "rows": rows, "notes": notes, "state": state, "cells": counts,
               "test_size": len(ds.test), "seconds": time.time() - t0}
    try:
        atomic_write_json(out_dir / "results.json", payload)
        atomic_write(out_dir / "results.csv", lambda tmp: frame.to_csv(tmp, index=False))
    except LabError as exc:  # e.g. a full disk: the previous results stay; the status says why (if it still fits)
        try:
            run.set_status("failed", error=str(exc))
        except LabError:
            pass
        raise
    msg = f"{state}: {counts['ok']} cells ok, {counts['failed']} failed, {counts['unavailable']} unavailable, {counts['cancelled']} cancelled"
    run.set_status(state, step=len(plan.cells), total=len(plan.cells), message=msg, cell_counts=counts,
                   error=(f"{counts['failed']} cell(s) failed; see cells in status.json" if state == "failed" else None))
    return frame


def load_results(out_dir: str | Path) -> dict | None:
    return read_json(Path(out_dir) / "results.json")
