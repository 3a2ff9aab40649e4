"""Metrics rows and artefacts forwarded to TensorBoard, MLflow or Weights & Biases, where users already look.

The run store calls :func:`forward` for every row it appends to ``metrics.jsonl`` and
:func:`finish` when a run ends, so every training loop is tracked through one hook.
A run asks for a tracker with ``log_with`` in its ``config.json`` (``tensorboard``, ``mlflow``
or ``wandb``; absent or ``None`` = off, the default). Each lives in core/store/trackers/:

* ``tensorboard``: event files in ``<run>/tensorboard/`` (``tensorboard --logdir runs``): scalars,
  preview grids, the config, and hyperparameters with the last metrics (HParams tab).
* ``mlflow``: one MLflow run per lab run with params, the git commit tag, artefacts (config,
  previews, results.json, report) and a study as the parent run of its cells. An optional extra
  (``pip install imbalance-lab[mlflow]``).
* ``wandb``: an offline W&B run under ``<run>/wandb/`` (``wandb sync`` uploads it). An optional
  extra (``pip install imbalance-lab[wandb]``).

Numbers of a row become scalars at the row's ``step`` under namespaced keys: ``loss`` ->
``train/loss``, ``test_accuracy`` -> ``eval/accuracy`` (core.store.trackers.run_view.metric_key;
``time`` and ``step`` are not logged; booleans and text are skipped).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from core.store.atomic import read_json
from core.errors import ConfigError
from core.store.trackers.run_view import STATE_FILE, scalars, tracker_of  # noqa: F401  (STATE_FILE: the ids' file, for readers)
from core.store.trackers.tb import TB_DIR  # noqa: F401  (where the event files go)

TRACKERS = ("tensorboard", "mlflow", "wandb")
_NEEDS = {"tensorboard": ("tensorboard", "pip install tensorboard (it is in requirements.txt)"),
          "mlflow": ("mlflow", "pip install 'imbalance-lab[mlflow]' (or mlflow-skinny; MLflow is an optional extra)"),
          "wandb": ("wandb", "pip install 'imbalance-lab[wandb]' (or wandb; W&B is an optional extra)")}
_OPEN_MAX = 16  # trackers kept open per process; the oldest is closed beyond that


def check_log_with(log_with: str | None) -> str | None:
    """The tracker name, or None; a clear error for an unknown or uninstalled one."""
    if log_with in (None, "", "none", "off"):
        return None
    if log_with not in TRACKERS:
        raise ConfigError(f"Unknown tracker '{log_with}' for log_with.", f"Choose one of: {', '.join(TRACKERS)} (or leave it off).")
    import importlib.util

    module, fix = _NEEDS[log_with]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"log_with={log_with!r} needs the '{module}' package, which is not installed.", fix + ", or turn tracking off.")
    return log_with


def _backend(name: str):
    if name == "tensorboard":
        from core.store.trackers.tb import TensorBoard

        return TensorBoard
    if name == "mlflow":
        from core.store.trackers.mlflow_run import MLflow

        return MLflow
    from core.store.trackers.wandb_run import WandB

    return WandB


_open: OrderedDict[tuple[str, str], Any] = OrderedDict()
_lock = threading.Lock()  # the app runs several jobs in threads of one process


def forward(run_dir: str | os.PathLike, row: dict[str, Any]) -> None:
    """Send one metrics row to the run's tracker, if its config names one (else nothing)."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", {}) or {}
    log_with = check_log_with(config.get("log_with"))
    if log_with is None:
        return
    values = scalars(row)
    if not values:
        return
    key = (str(run_dir.resolve()), log_with)
    with _lock:
        tracker = _open.get(key)
        if tracker is None:
            tracker = _open[key] = _backend(log_with)(run_dir, config)
            while len(_open) > _OPEN_MAX:
                _open.popitem(last=False)[1].close("running")
        _open.move_to_end(key)
        step = row.get("step")
        tracker.log(values, int(step) if isinstance(step, (int, float)) else 0, row.get("time"))


def finish(run_dir: str | os.PathLike, state: str) -> None:
    """Close the run's open trackers (this process's) when it ends: artefacts, flush, the end state.
    A run with none open here (a study; a killed run another process marks ended) has its saved
    MLflow run finished instead."""
    prefix = str(Path(run_dir).resolve())
    with _lock:
        keys = [k for k in _open if k[0] == prefix]
        for key in keys:
            _open.pop(key).close(state)
    if not any(k[1] == "mlflow" for k in keys):
        config = read_json(Path(run_dir) / "config.json", {}) or {}
        if tracker_of(config) == "mlflow":
            from core.store.trackers.mlflow_run import end_saved_run

            end_saved_run(Path(run_dir), config, state)


def add_artifact(run_dir: str | os.PathLike, path: str | os.PathLike) -> bool:
    """A file made after the run (``python -m core report``'s report.html) joins the run's MLflow artefacts."""
    config = read_json(Path(run_dir) / "config.json", {}) or {}
    if tracker_of(config) != "mlflow":
        return False
    from core.store.trackers.mlflow_run import add_artifact as add

    return add(Path(run_dir), Path(path))


@atexit.register
def _close_all() -> None:
    with _lock:
        while _open:
            _open.popitem()[1].close("running")
