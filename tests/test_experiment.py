"""The experiment pipeline: study configs, bad input, and a tiny study end to end with resume."""

import importlib.util
import json
import os
import sys

import pytest

from core.cli import main
from core.errors import ConfigError
from core.experiment import PRESETS, StudyConfig, preset, run_study

TINY = """
name = "tiny"
methods = ["none", "oversample", "cutmix", "cfg", "sd"]
cfg_ws = [0.1]
classifiers = ["small"]
seeds = [0, 1]
[data]
dataset = "digits"
profile = "custom"
counts = [2, 3, 4, 6, 8, 10, 14, 20, 30, 40]
[classifier]
epochs = 1
batch_size = 64
lr = 0.05
eval_every = 0
[cfg_train]
steps = 2
batch_size = 8
preview_every = 0
checkpoint_every = 0
[cfg_sample]
sampler = "ddim"
steps = 2
"""

ROW_KEYS = {"method", "classifier", "seeds", "accuracy", "macro_f1", "minority_f1", "per_class_f1", "kid", "skipped"}


@pytest.fixture()
def lab_env(tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _run_cli(capsys, *argv):
    rc = main(["experiment", *argv])
    out = capsys.readouterr().out
    return rc, out


def test_tiny_study_end_to_end_then_resumes(lab_env, capsys, monkeypatch):
    cfg_path = lab_env / "tiny.toml"
    cfg_path.write_text(TINY)
    out_dir = lab_env / "study"
    rc, out = _run_cli(capsys, "--config", str(cfg_path), "--out", str(out_dir), "--json")
    assert rc == 0
    rows = {r["method"]: r for r in json.loads(out)["rows"]}
    assert set(rows) == {"none", "oversample", "cutmix", "cfg@w=0.1", "sd"}
    for name in ("none", "oversample", "cutmix"):
        r = rows[name]
        assert ROW_KEYS <= set(r) and r["classifier"] == "small" and r["seeds"] == [0, 1] and r["skipped"] is None
        assert 0.0 <= r["accuracy"]["mean"] <= 1.0 and r["accuracy"]["std"] >= 0.0
        assert len(r["per_class_f1"]["mean"]) == 10
        # offline: no Inception weights, so the substitute is reported under its own name
        assert "fid" not in r and r["fd_judge"]["n_images"] > 0 and r["fd_judge"]["label"] == "FD (judge CNN features)"
        assert r["kid"]["extractor"] == "judge" and "FID" not in r["kid"]["label"]
    assert rows["none"]["fd_judge"]["n_images"] == 137 and rows["oversample"]["fd_judge"]["n_images"] == 400
    assert rows["sd"]["skipped"] and rows["sd"]["seeds"] == [] and "Stable Diffusion" in rows["sd"]["skipped"]
    cfg_row = rows["cfg@w=0.1"]
    if importlib.util.find_spec("core.train.cfg") and importlib.util.find_spec("core.generators.cfg"):
        assert cfg_row["skipped"] is None and cfg_row["seeds"] == [0, 1], cfg_row["skipped"]
        assert cfg_row["fd_judge"]["n_images"] == 400 and (out_dir / "cfg" / "seed1" / "checkpoints").is_dir()
        assert [p["n_images"] for p in cfg_row["per_class_fd_judge"]] == [38, 37, 36, 34, 32, 30, 26, 20, 10, 0]
    else:
        assert "CFG generator not available" in cfg_row["skipped"]
    assert (out_dir / "results.csv").exists()
    csv = (out_dir / "results.csv").read_text().splitlines()
    assert csv[0].startswith("method,classifier,seeds") and "fd_judge_mean" in csv[0] and "fid_mean" not in csv[0] and len(csv) == 6
    results_before = (out_dir / "results.json").read_text()
    cells = sorted(p.name for p in (out_dir / "cells").iterdir())
    assert "oversample__small__seed1" in cells

    # resume: nothing finished is retrained
    import core.train.classifier as clf

    calls = []
    real = clf.train_classifier
    monkeypatch.setattr(clf, "train_classifier", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    rc, out = _run_cli(capsys, "--config", str(cfg_path), "--out", str(out_dir), "--json")
    assert rc == 0 and calls == []
    again = {r["method"]: r for r in json.loads(out)["rows"]}
    assert again["oversample"]["accuracy"] == rows["oversample"]["accuracy"]
    # an interrupted cell (no results.json yet) is the only one trained on the next call
    (out_dir / "cells" / "cutmix__small__seed1" / "results.json").unlink()
    rc, out = _run_cli(capsys, "--config", str(cfg_path), "--out", str(out_dir), "--json")
    assert rc == 0 and [p.name for p in calls] == ["cutmix__small__seed1"]
    assert json.loads((out_dir / "results.json").read_text())["rows"] == json.loads(results_before)["rows"]


def _small(**kw):
    base = dict(name="a", methods=["none"], seeds=[0], classifier={"epochs": 1, "batch_size": 64}, generation_metrics=False,
                data={"dataset": "digits", "profile": "exponential", "ratio": 10})
    return StudyConfig.from_dict({**base, **kw})


def test_folder_of_another_study_is_refused_untouched(lab_env, capsys):
    out_dir = lab_env / "s"
    frame = run_study(_small(), out_dir)
    assert list(frame["method"]) == ["none"] and frame["accuracy_mean"][0] > 0
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out_dir.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="another study") as e:
        run_study(_small(name="b", methods=["none", "oversample"]), out_dir)
    assert "new --out folder" in str(e.value)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out_dir.rglob("*") if p.is_file()}
    assert after == before
    # the CLI turns it into a clear error and exit status 2
    assert main(["experiment", "--preset", "quick", "--out", str(out_dir)]) == 2
    assert "another study" in capsys.readouterr().err
    # a folder that is not a run at all
    other = lab_env / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a run folder"):
        run_study(_small(), other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"methods": ["none", "gan"]}, "Unknown method"),
        ({"classifiers": ["vgg"]}, "Unknown classifier"),
        ({"data": {"dataset": "imagenet"}}, "Unknown dataset"),
        ({"seeds": []}, "Seeds"),
        ({"classifier": {"epoch": 3}}, r"Unknown \[classifier\] option"),
        ({"colour": "blue"}, "Unknown study option"),
        ({"cfg_ws": [-1.0]}, "Guidance weights"),
    ],
)
def test_bad_study_configs(change, message):
    with pytest.raises(ConfigError, match=message) as e:
        StudyConfig.from_dict({"name": "x", **change})
    assert "Fix:" in str(e.value)


def test_toml_errors_and_presets(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('methods = ["none", "dalle"]\n[data]\ndataset = "digits"\n')
    with pytest.raises(ConfigError, match="dalle"):
        StudyConfig.from_toml(bad)
    bad.write_text("methods = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        StudyConfig.from_toml(bad)
    q = preset("quick")
    assert q.data.dataset == "digits" and q.data.profile == "exponential" and q.data.ratio == 50 and q.seeds == [0, 1]
    assert q.classifiers == ["small"] and {"none", "oversample", "mixup", "cutmix", "cfg", "sd"} <= set(q.methods)
    p = preset("paper")
    assert p.data.counts == [500 * (i + 1) for i in range(10)] and p.cfg_ws == [0.1, 7.5]
    assert p.classifiers == ["resnet18", "resnet50"] and p.method_params["mixup"]["lam"] == 0.6
    root = os.path.join(os.path.dirname(__file__), "..", "studies")
    for name in PRESETS:  # the example TOML files describe the same studies
        assert StudyConfig.from_toml(os.path.join(root, f"{name}.toml")).identity() == preset(name).identity()
    with pytest.raises(ConfigError, match="Unknown preset"):
        preset("huge")


def test_missing_generator_is_a_reasoned_skip(lab_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "core.generators.cfg", None)  # import fails as if the module were absent
    frame = run_study(_small(methods=["none", "cfg"], cfg_ws=[0.1, 7.5]), lab_env / "s")
    assert list(frame["method"]) == ["none", "cfg@w=0.1", "cfg@w=7.5"]
    assert frame["skipped"][0] == "" and frame["accuracy_mean"][0] > 0
    assert all("CFG generator not available" in frame["skipped"][i] for i in (1, 2))
    rows = json.loads((lab_env / "s" / "results.json").read_text())["rows"]
    assert rows[1]["seeds"] == [] and rows[1]["accuracy"] == {"mean": None, "std": None}
