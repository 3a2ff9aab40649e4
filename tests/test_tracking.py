"""Metrics rows reach TensorBoard and MLflow through the run store's one hook (core.store.tracking)."""

import json

import pytest

from core.store import tracking
from core.cli import main
from core.errors import ConfigError
from core.store.runs import Run


def _tb_scalars(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / tracking.TB_DIR))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_rows_become_tensorboard_scalars_in_the_run_folder(tmp_path):
    run = Run.create("cfg", {"log_with": "tensorboard", "data": {"dataset": "digits"}}, root=tmp_path)
    run.log_metrics({"step": 25, "loss": 0.5, "lr": 0.001, "final": True, "note": "text is skipped"})
    run.log_metrics({"step": 50, "loss": 0.25, "lr": 0.002})
    run.set_status("done")
    assert (run.path / "tensorboard").is_dir() and list((run.path / "tensorboard").glob("events.out.tfevents.*"))
    assert _tb_scalars(run.path, "train/loss") == [(25, 0.5), (50, 0.25)]  # exact in float32
    assert [s for s, _ in _tb_scalars(run.path, "train/lr")] == [25, 50]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.path / tracking.TB_DIR))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["train/loss", "train/lr"]  # no time, step, bool or text


def test_off_by_default_writes_nothing(tmp_path):
    run = Run.create("cfg", {"data": {"dataset": "digits"}}, root=tmp_path)
    run.log_metrics({"step": 1, "loss": 1.0})
    run.set_status("done")
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "metrics.jsonl", "status.json"]


def test_rows_go_to_an_mlflow_file_store_and_a_resume_continues_the_same_run(tmp_path, mlflow_store):
    run = Run.create("classifier", {"log_with": "mlflow", "data": {"dataset": "digits"}, "lr": 0.1}, root=tmp_path / "runs")
    run.log_metrics({"step": 10, "loss": 2.0, "accuracy": 0.5})
    run.log_metrics({"step": 20, "loss": 1.5, "accuracy": 0.75})
    run.set_status("cancelled")
    # a new process resumes the run: the same MLflow run goes on
    tracking._open.clear()
    run.log_metrics({"step": 30, "loss": 1.0})
    run.set_status("done")

    exp = mlflow_store.get_experiment_by_name("imbalance-lab")
    runs = mlflow_store.search_runs([exp.experiment_id])
    assert len(runs) == 1
    r = runs[0]
    assert r.info.run_name == run.id and r.info.status == "FINISHED"
    assert json.loads((run.path / "tracking.json").read_text())["mlflow_run_id"] == r.info.run_id
    hist = sorted((m.step, m.value) for m in mlflow_store.get_metric_history(r.info.run_id, "train/loss"))
    assert hist == [(10, 2.0), (20, 1.5), (30, 1.0)]
    assert sorted((m.step, m.value) for m in mlflow_store.get_metric_history(r.info.run_id, "eval/accuracy")) == [(10, 0.5), (20, 0.75)]
    assert r.data.params["data.dataset"] == "digits" and r.data.params["lr"] == "0.1" and r.data.params["kind"] == "classifier"


def test_a_killed_runs_mlflow_run_is_ended_when_the_next_process_marks_it_interrupted(tmp_path, mlflow_store):
    from core.jobs.records import JobStore

    run = Run.create("classifier", {"log_with": "mlflow", "data": {"dataset": "digits"}}, root=tmp_path / "runs")
    run.set_status("running", owner="4194311:gone")  # an owner process that is not alive
    run.log_metrics({"step": 10, "loss": 2.0})
    mlflow_id = json.loads((run.path / "tracking.json").read_text())["mlflow_run_id"]
    tracking._open.clear()  # the process was killed: no close() ran, the MLflow run stays RUNNING
    assert mlflow_store.get_run(mlflow_id).info.status == "RUNNING"
    assert JobStore(tmp_path / "runs").mark_interrupted() == [run.id]  # a new server starts
    assert mlflow_store.get_run(mlflow_id).info.status == "KILLED"
    run.set_status("failed")  # an already-ended MLflow run is left as it is
    assert mlflow_store.get_run(mlflow_id).info.status == "KILLED"


def test_unknown_tracker_is_refused_with_the_choices():
    from core.train.cfg_unet import CFGTrainConfig

    with pytest.raises(ConfigError, match="tensorboard, mlflow, wandb"):
        CFGTrainConfig(log_with="comet").validate()
    assert tracking.check_log_with("none") is None and tracking.check_log_with(None) is None


def test_train_cfg_cli_logs_every_metrics_row_to_tensorboard(tmp_path):
    out = tmp_path / "cfg"
    assert main(["-q", "train-cfg", "--profile", "paper", "--steps", "4", "--batch-size", "4", "--preview-every", "0", "--preview-steps", "1",
                 "--checkpoint-every", "0", "--log-with", "tensorboard", "--out", str(out)]) == 0
    assert Run(out).config["log_with"] == "tensorboard"
    rows = Run(out).metrics()
    assert list(rows["step"]) == [4]  # log_every 25 > 4 steps: the last step's row only
    assert _tb_scalars(out, "train/loss") == [(4, pytest.approx(float(rows["loss"].iloc[0]), rel=1e-6))]


def test_train_classifier_cli_logs_to_mlflow(tmp_path, mlflow_store):
    out = tmp_path / "clf"
    assert main(["train-classifier", "--profile", "paper", "--steps", "3", "--batch-size", "16", "--log-with", "mlflow", "--out", str(out), "--json"]) == 0
    rows = Run(out).metrics()
    exp = mlflow_store.get_experiment_by_name("imbalance-lab")
    (r,) = mlflow_store.search_runs([exp.experiment_id])
    assert r.info.status == "FINISHED"
    got = sorted((m.step, m.value) for m in mlflow_store.get_metric_history(r.info.run_id, "eval/accuracy"))
    want = [(int(s), float(v)) for s, v in zip(rows["step"], rows["test_accuracy"]) if v == v]
    assert got == want and len(want) >= 1


def test_experiment_log_with_reaches_every_training_and_a_resume_keeps_it(tmp_path, monkeypatch):
    import core.study.run as experiment

    seen = []
    monkeypatch.setattr(experiment, "run_study", lambda cfg, out, cb, executor=None: seen.append(cfg))
    monkeypatch.setattr(experiment, "load_results", lambda out: {"state": "done", "rows": [], "notes": [], "cells": {}})
    out = tmp_path / "study"
    assert main(["experiment", "--preset", "quick", "--out", str(out), "--log-with", "tensorboard"]) == 0
    assert seen[-1].classifier["log_with"] == "tensorboard" and seen[-1].cfg_train["log_with"] == "tensorboard"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"kind": "study", **seen[-1].to_dict()}, default=str))
    assert main(["experiment", "--preset", "quick", "--out", str(out)]) == 0  # no flag: as the study was made
    assert seen[-1].identity() == seen[-2].identity()


def test_train_page_choice_reaches_the_run_and_its_rows_reach_tensorboard(runs_root, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core import jobs
    from core.store.runs import list_runs
    from tests.test_app_pages import APP, _button, _page, _wait_all, fake_cfg_runner

    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(jobs.RUNNERS, "cfg", fake_cfg_runner)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at = _page(at, "app_pages/train.py")
    assert at.selectbox(key="cfg_log_with").value == "off" and at.selectbox(key="cls_log_with").options == ["off", "tensorboard", "mlflow"]
    at.selectbox(key="cfg_log_with").set_value("tensorboard")
    at.number_input(key="cfg_steps").set_value(3)
    _button(at, "Start CFG training").click().run()
    _wait_all()
    (run,) = list_runs()
    assert run.config["log_with"] == "tensorboard"
    assert _tb_scalars(run.path, "train/loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3, rel=1e-6))]
