"""Artefacts where trackers look (issue 30 §3), read back from each tracker's own store: MLflow's
file store (artefacts, git commit tag, a study as parent run, namespaced keys), TensorBoard's event
files (hparams, preview images) and W&B's offline transaction log."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from PIL import Image

from core.store import tracking
from core.store.atomic import atomic_write_json
from core.store.runs import Run
from core.store.trackers.run_view import metric_key
from tests.test_tracking import mlflow_store  # noqa: F401  (the fixture: a file store in tmp_path)


def _preview(run: Run, step: int, colour: int) -> None:
    Image.fromarray(np.full((6, 10, 3), colour, dtype=np.uint8)).save(run.images / f"preview_{step:07d}.png")


def test_metric_keys_are_namespaced():
    assert [metric_key(k) for k in ("loss", "lr", "images_per_s", "test_accuracy", "test_macro_f1", "accuracy", "val_loss", "eval/x", "fid")] == \
        ["train/loss", "train/lr", "train/images_per_s", "eval/accuracy", "eval/macro_f1", "eval/accuracy", "eval/loss", "eval/x", "eval/fid"]


# ----------------------------------------------------------------------------- MLflow
def _artefacts(store, run_id: str, path: str | None = None) -> list[str]:
    out = []
    for f in store.list_artifacts(run_id, path):
        out += _artefacts(store, run_id, f.path) if f.is_dir else [f.path]
    return sorted(out)


def test_mlflow_gets_the_artefacts_the_commit_and_namespaced_keys(tmp_path, mlflow_store):
    run = Run.create("classifier", {"log_with": "mlflow", "data": {"dataset": "digits"}}, root=tmp_path / "runs")
    assert run.provenance["commit"]  # the worktree is a git checkout
    run.log_metrics({"step": 10, "loss": 2.0, "test_accuracy": 0.5})
    _preview(run, 20, 128)
    run.log_metrics({"step": 20, "loss": 1.5, "test_accuracy": 0.75})
    atomic_write_json(run.path / "results.json", {"accuracy": 0.75})
    run.set_status("done")
    (r,) = mlflow_store.search_runs([mlflow_store.get_experiment_by_name("imbalance-lab").experiment_id])
    assert r.data.tags["mlflow.source.git.commit"] == run.provenance["commit"]
    assert sorted(k for k in r.data.metrics) == ["eval/accuracy", "train/loss"]
    assert _artefacts(mlflow_store, r.info.run_id) == ["config.json", "previews/preview_0000020.png", "results.json"]
    got = json.loads(open(mlflow_store.download_artifacts(r.info.run_id, "results.json", str(tmp_path))).read())
    assert got == {"accuracy": 0.75}


def test_a_study_is_the_parent_run_of_its_cells(tmp_path, mlflow_store):
    study = Run.open_or_create(tmp_path / "study", "study", {"name": "s", "classifier": {"log_with": "mlflow"}, "cfg_train": {"log_with": "mlflow"}})
    cells = [Run.open_or_create(tmp_path / "study" / "cells" / cid, "classifier", {"log_with": "mlflow", "lr": 0.1})
             for cid in ("clf__none__small__seed0", "clf__oversample__small__seed0")]
    cfg = Run.open_or_create(tmp_path / "study" / "cfg" / "seed0", "cfg", {"log_with": "mlflow"})
    for i, cell in enumerate([*cells, cfg]):
        cell.log_metrics({"step": 5, "loss": 1.0 + i})
        cell.set_status("done")
    atomic_write_json(study.path / "results.json", {"rows": []})
    study.set_status("done")
    (study.path / "report.html").write_text("<html>report</html>")
    assert tracking.add_artifact(study.path, study.path / "report.html")  # what `python -m core report` does after writing it

    runs = mlflow_store.search_runs([mlflow_store.get_experiment_by_name("imbalance-lab").experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert sorted(by_name) == sorted(["study", "clf__none__small__seed0", "clf__oversample__small__seed0", "seed0"])
    parent = by_name["study"]
    assert parent.data.tags["lab.kind"] == "study" and parent.info.status == "FINISHED"
    assert {r.data.tags.get("mlflow.parentRunId") for n, r in by_name.items() if n != "study"} == {parent.info.run_id}
    assert "mlflow.parentRunId" not in parent.data.tags
    assert _artefacts(mlflow_store, parent.info.run_id) == ["config.json", "report.html", "results.json"]
    assert by_name["seed0"].data.metrics == {"train/loss": 3.0}


# ----------------------------------------------------------------------------- TensorBoard
def test_tensorboard_gets_hparams_and_preview_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = Run.create("cfg", {"log_with": "tensorboard", "data": {"dataset": "digits", "counts": [1, 2]}, "lr": 0.001}, root=tmp_path)
    _preview(run, 4, 10)
    run.log_metrics({"step": 4, "loss": 0.5})
    _preview(run, 8, 200)
    run.log_metrics({"step": 8, "loss": 0.25})
    run.set_status("done")
    acc = EventAccumulator(str(run.path / tracking.TB_DIR), size_guidance={"images": 0})
    acc.Reload()
    imgs = acc.Images("previews")
    assert [(e.step, e.width, e.height) for e in imgs] == [(4, 10, 6), (8, 10, 6)]
    assert np.asarray(Image.open(__import__("io").BytesIO(imgs[1].encoded_image_string)))[0, 0].tolist() == [200, 200, 200]
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["data.dataset"].string_value == "digits" and start.hparams["lr"].number_value == 0.001
    assert start.hparams["data.counts"].string_value == "[1, 2]" and start.hparams["kind"].string_value == "cfg"
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in exp.metric_infos] == ["train/loss"]
    assert [(s.step, s.value) for s in acc.Scalars("train/loss")] == [(4, 0.5), (8, 0.25)]  # no extra point from the hparams


# ----------------------------------------------------------------------------- W&B
def _wandb_records(run_dir):
    """The records of the offline run's transaction log (<run>/wandb/offline-run-*/run-*.wandb): W&B's
    LevelDB-style log (a 7-byte header, 32 KiB blocks of [crc32, length, type] + payload chunks), each
    record a wandb_internal_pb2.Record. Read by hand: wandb ships no reader for it in Python any more."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = []
    for f in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        data, pos, buf = f.read_bytes(), 7, b""
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            if 32768 - pos % 32768 < 7:
                pos += 32768 - pos % 32768
                continue
            _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
            if n == 0 and kind == 0:  # block padding
                pos += 32768 - pos % 32768
                continue
            buf, pos = buf + data[pos + 7:pos + 7 + n], pos + 7 + n
            if kind in (1, 4):  # FULL or LAST chunk
                rec = pb.Record()
                rec.ParseFromString(buf)
                out.append(rec)
                buf = b""
    return out


def test_wandb_offline_run_holds_config_metrics_previews_and_files(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = Run.create("cfg", {"log_with": "wandb", "data": {"dataset": "digits"}}, root=tmp_path)
    run.log_metrics({"step": 4, "loss": 0.5})
    _preview(run, 8, 99)
    run.log_metrics({"step": 8, "loss": 0.25, "test_accuracy": 0.5})
    atomic_write_json(run.path / "results.json", {"accuracy": 0.5})
    run.set_status("done")

    recs = _wandb_records(run.path)
    (meta,) = [r.run for r in recs if r.WhichOneof("record_type") == "run"]
    assert meta.display_name == run.id and meta.project == "imbalance-lab" and meta.run_id == json.loads((run.path / "tracking.json").read_text())["wandb_run_id"]
    config = {i.key: json.loads(i.value_json) for i in meta.config.update}
    assert config["data"] == {"dataset": "digits"} and config["kind"] == "cfg"
    hist = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item} for r in recs if r.WhichOneof("record_type") == "history"]
    assert [(h["_step"], h["train/loss"]) for h in hist] == [(4, 0.5), (8, 0.25)]
    assert hist[1]["eval/accuracy"] == 0.5 and hist[1]["previews/_type"] == "image-file" and "previews/_type" not in hist[0]
    (offline,) = run.path.glob("wandb/offline-run-*")
    assert (offline / "files" / hist[1]["previews/path"]).is_file()
    assert json.loads((offline / "files" / "results.json").read_text()) == {"accuracy": 0.5}
    assert [r.exit.exit_code for r in recs if r.WhichOneof("record_type") == "exit"] == [0]


def test_train_classifier_cli_log_with_wandb_writes_an_offline_run(tmp_path, monkeypatch):
    from core.cli import main

    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "clf"
    assert main(["train-classifier", "--profile", "paper", "--steps", "3", "--batch-size", "16", "--log-with", "wandb", "--out", str(out), "--json"]) == 0
    assert Run(out).config["log_with"] == "wandb"
    # the flag reaches an offline W&B run of this lab run (what it holds: test_wandb_offline_run_holds_...)
    (meta,) = [r.run for r in _wandb_records(out) if r.WhichOneof("record_type") == "run"]
    assert meta.run_id == json.loads((out / "tracking.json").read_text())["wandb_run_id"] and meta.display_name == "clf"
