"""MLflow: one MLflow run per lab run, in experiment ``imbalance-lab`` (or ``MLFLOW_EXPERIMENT_NAME``),
at ``MLFLOW_TRACKING_URI`` or else the file store ``<runs>/mlruns``.

Params: the flat config. Tags: ``mlflow.source.git.commit`` (the code's commit, from the run's
provenance), ``lab.kind``, ``lab.run_dir``. A study's cells are child runs of the study's own MLflow
run (``mlflow.parentRunId``), made by the first cell that logs (under a file lock: cells may run
in several processes). When a run ends, its config.json, results.json, report.html and preview
grids (``previews/``) are uploaded as artefacts.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

from core.store.trackers.run_view import artefacts, flat_config, git_commit, previews, save_ids, saved_ids, study_of, tracker_of

EXPERIMENT = "imbalance-lab"
STATUS = {"done": "FINISHED", "failed": "FAILED", "cancelled": "KILLED", "interrupted": "KILLED"}


def mlflow_uri() -> str:
    """MLFLOW_TRACKING_URI, else the file store ``<runs>/mlruns``."""
    from core.paths import runs_dir

    return os.environ.get("MLFLOW_TRACKING_URI") or (runs_dir() / "mlruns").as_uri()


def client(uri: str):
    if uri.startswith("file:"):
        # MLflow 3 keeps the file store in maintenance mode behind this opt-in; it is the
        # one store mlflow-skinny can write without a server or SQLAlchemy.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _saved_run_id(run_dir: Path, uri: str) -> str | None:
    ids = saved_ids(run_dir)
    return ids.get("mlflow_run_id") if ids.get("mlflow_uri") == uri else None


def _create(cl, uri: str, run_dir: Path, config: dict, parent: str | None = None) -> str:
    from mlflow.entities import Param

    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    exp = cl.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp is not None else cl.create_experiment(name)
    tags = {"lab.run_dir": str(run_dir), "lab.kind": str(config.get("kind"))}
    if git_commit(config):
        tags["mlflow.source.git.commit"] = git_commit(config)
    if parent:
        tags["mlflow.parentRunId"] = parent
    run_id = cl.create_run(exp_id, run_name=run_dir.name, tags=tags).info.run_id
    params = [Param(k, str(v)[:6000]) for k, v in flat_config(config).items()]
    for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        cl.log_batch(run_id, params=params[i:i + 100])
    save_ids(run_dir, mlflow_uri=uri, mlflow_run_id=run_id)
    return run_id


def study_run(cl, uri: str, study: Path) -> str:
    """The study's MLflow run (the cells' parent), made once whichever cell process comes first."""
    from filelock import FileLock

    from core.store.atomic import read_json

    with FileLock(study / ".tracking.lock", timeout=120):
        return _saved_run_id(study, uri) or _create(cl, uri, study, read_json(study / "config.json", {}) or {})


class MLflow:
    def __init__(self, run_dir: Path, config: dict):
        self.run_dir, self.uri = run_dir, mlflow_uri()
        self.client = client(self.uri)
        self.run_id = _saved_run_id(run_dir, self.uri)
        if self.run_id is None:
            study = study_of(run_dir)
            parent = study_run(self.client, self.uri, study) if study is not None else None
            self.run_id = _create(self.client, self.uri, run_dir, config, parent)
        else:
            self.client.update_run(self.run_id, status="RUNNING")  # a resumed run logs on into its MLflow run

    def log(self, values: dict[str, float], step: int, wall: float | None) -> None:
        from mlflow.entities import Metric

        ts = int((wall or time.time()) * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, ts, step) for k, v in values.items()])

    def close(self, state: str) -> None:
        upload(self.client, self.run_id, self.run_dir)
        self.client.set_terminated(self.run_id, status=STATUS.get(state, "FINISHED"))


def upload(cl, run_id: str, run_dir: Path) -> None:
    """The run's artefacts: config.json, results.json, report.html at the top, preview grids under previews/."""
    for path in artefacts(run_dir):
        cl.log_artifact(run_id, str(path))
    for path in previews(run_dir):
        cl.log_artifact(run_id, str(path), artifact_path="previews")


def end_saved_run(run_dir: Path, config: dict, state: str) -> None:
    """A lab run that ends with no tracker open in this process (a study, whose cells logged; or a run
    whose process was killed and that another process now marks ``interrupted``): upload its
    artefacts and end its MLflow run if it is still RUNNING."""
    run_id = _saved_run_id(run_dir, mlflow_uri())
    if tracker_of(config) != "mlflow" or not run_id:
        return
    try:
        cl = client(mlflow_uri())
        upload(cl, run_id, run_dir)
        if cl.get_run(run_id).info.status == "RUNNING":
            cl.set_terminated(run_id, status=STATUS.get(state, "FINISHED"))
    except Exception as e:  # mlflow gone or its server down: the lab's own status is already saved; say so, go on
        warnings.warn(f"MLflow run {run_id} of {run_dir.name} could not be ended ({type(e).__name__}: {e}); "
                      f"end it in MLflow by hand.", stacklevel=2)


def add_artifact(run_dir: Path, path: Path) -> bool:
    """Upload one more file (e.g. a report made after the run ended) to the run's MLflow run, if it has one."""
    run_id = _saved_run_id(run_dir, mlflow_uri())
    if not run_id:
        return False
    client(mlflow_uri()).log_artifact(run_id, str(path))
    return True
