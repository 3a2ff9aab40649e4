"""Metrics rows forwarded to TensorBoard or MLflow, where users already look.

The run store calls :func:`forward` for every row it appends to ``metrics.jsonl`` and
:func:`finish` when a run ends, so every training loop is tracked through one hook.
A run asks for a tracker with ``log_with`` in its ``config.json`` (``tensorboard`` or
``mlflow``; absent or ``None`` = off, the default):

* ``tensorboard``: event files in ``<run>/tensorboard/`` (``tensorboard --logdir runs``).
* ``mlflow``: one MLflow run per lab run, in experiment ``imbalance-lab`` (or
  ``MLFLOW_EXPERIMENT_NAME``), at ``MLFLOW_TRACKING_URI`` or else the file store
  ``<runs>/mlruns``; the MLflow run id is kept in ``<run>/tracking.json`` so a resumed
  run goes on logging into the same MLflow run. MLflow is an optional extra
  (``pip install mlflow-skinny``).

Numbers of a row become scalars at the row's ``step`` (``time`` and ``step`` are not
logged; booleans and text are skipped).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json, read_json
from core.errors import ConfigError

TRACKERS = ("tensorboard", "mlflow")
TB_DIR = "tensorboard"  # event files, inside the run folder
STATE_FILE = "tracking.json"  # the MLflow run id of a lab run
EXPERIMENT = "imbalance-lab"
_MLFLOW_STATUS = {"done": "FINISHED", "failed": "FAILED", "cancelled": "KILLED", "interrupted": "KILLED"}
_OPEN_MAX = 16  # trackers kept open per process; the oldest is closed beyond that


def check_log_with(log_with: str | None) -> str | None:
    """The tracker name, or None; a clear error for an unknown or uninstalled one."""
    if log_with in (None, "", "none", "off"):
        return None
    if log_with not in TRACKERS:
        raise ConfigError(f"Unknown tracker '{log_with}' for log_with.", f"Choose one of: {', '.join(TRACKERS)} (or leave it off).")
    import importlib.util

    module, fix = {"tensorboard": ("tensorboard", "pip install tensorboard (it is in requirements.txt)"),
                   "mlflow": ("mlflow", "pip install mlflow-skinny (MLflow is an optional extra)")}[log_with]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"log_with={log_with!r} needs the '{module}' package, which is not installed.", fix + ", or turn tracking off.")
    return log_with


def mlflow_uri() -> str:
    """MLFLOW_TRACKING_URI, else the file store ``<runs>/mlruns``."""
    from core.paths import runs_dir

    return os.environ.get("MLFLOW_TRACKING_URI") or (runs_dir() / "mlruns").as_uri()


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics row that a tracker plots (not time/step, not bools or text)."""
    return {k: float(v) for k, v in row.items()
            if k not in ("time", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)}


class _TensorBoard:
    def __init__(self, run_dir: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / TB_DIR))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")

    def log(self, values: dict[str, float], step: int, wall: float | None) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, global_step=step, walltime=wall)
        self.writer.flush()  # rows are seconds apart: readers see each one at once

    def close(self, state: str) -> None:
        self.writer.close()


def _mlflow_client(uri: str):
    if uri.startswith("file:"):
        # MLflow 3 keeps the file store in maintenance mode behind this opt-in; it is the
        # one store mlflow-skinny can write without a server or SQLAlchemy.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


class _MLflow:
    def __init__(self, run_dir: Path, config: dict):
        import pandas as pd

        uri = mlflow_uri()
        self.client = _mlflow_client(uri)
        state = read_json(run_dir / STATE_FILE, {}) or {}
        self.run_id = state.get("mlflow_run_id") if state.get("mlflow_uri") == uri else None
        if self.run_id is None:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
            run = self.client.create_run(exp_id, run_name=run_dir.name, tags={"lab.run_dir": str(run_dir), "lab.kind": str(config.get("kind"))})
            self.run_id = run.info.run_id
            from mlflow.entities import Param

            flat = pd.json_normalize(json.loads(json.dumps(config, default=str)), sep=".").iloc[0].to_dict()
            params = [Param(k, str(v)[:6000]) for k, v in flat.items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(self.run_id, params=params[i:i + 100])
            atomic_write_json(run_dir / STATE_FILE, {"mlflow_uri": uri, "mlflow_run_id": self.run_id})
        else:
            self.client.update_run(self.run_id, status="RUNNING")  # a resumed run logs on into its MLflow run

    def log(self, values: dict[str, float], step: int, wall: float | None) -> None:
        from mlflow.entities import Metric

        ts = int((wall or time.time()) * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, ts, step) for k, v in values.items()])

    def close(self, state: str) -> None:
        self.client.set_terminated(self.run_id, status=_MLFLOW_STATUS.get(state, "FINISHED"))


_BACKENDS = {"tensorboard": _TensorBoard, "mlflow": _MLflow}
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
            tracker = _open[key] = _BACKENDS[log_with](run_dir, config)
            while len(_open) > _OPEN_MAX:
                _open.popitem(last=False)[1].close("running")
        _open.move_to_end(key)
        step = row.get("step")
        tracker.log(values, int(step) if isinstance(step, (int, float)) else 0, row.get("time"))


def finish(run_dir: str | os.PathLike, state: str) -> None:
    """Close the run's open trackers (this process's) when it ends: flush, and the MLflow run's end state."""
    prefix = str(Path(run_dir).resolve())
    with _lock:
        keys = [k for k in _open if k[0] == prefix]
        for key in keys:
            _open.pop(key).close(state)
    if not any(k[1] == "mlflow" for k in keys):
        _end_orphaned_mlflow_run(Path(run_dir), state)


def _end_orphaned_mlflow_run(run_dir: Path, state: str) -> None:
    """A run whose process was killed left its MLflow run RUNNING; when this (other) process ends
    the lab run (``interrupted`` after a server restart, ``cancelled``, ...), end the MLflow run too."""
    config = read_json(run_dir / "config.json", {}) or {}
    saved = read_json(run_dir / STATE_FILE, {}) or {}
    if config.get("log_with") != "mlflow" or not saved.get("mlflow_run_id") or saved.get("mlflow_uri") != mlflow_uri():
        return
    try:
        client = _mlflow_client(saved["mlflow_uri"])
        if client.get_run(saved["mlflow_run_id"]).info.status == "RUNNING":
            client.set_terminated(saved["mlflow_run_id"], status=_MLFLOW_STATUS.get(state, "FINISHED"))
    except Exception as e:  # mlflow gone or its server down: the lab's own status is already saved; say so, go on
        warnings.warn(f"MLflow run {saved['mlflow_run_id']} of {run_dir.name} could not be ended ({type(e).__name__}: {e}); "
                      f"end it in MLflow by hand.", stacklevel=2)


@atexit.register
def _close_all() -> None:
    with _lock:
        while _open:
            _open.popitem()[1].close("running")
