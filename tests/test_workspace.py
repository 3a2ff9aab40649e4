"""core.serving.workspace: URL parameters, the saved workspace file, model pickers, duplicate guard."""

from __future__ import annotations

from types import SimpleNamespace

from core.serving import workspace
from core.data.loading import DataConfig
from tests.helpers import cfg_run


def test_params_round_trip_and_only_non_defaults():
    cfg = DataConfig(dataset="digits", profile="linear", ratio=20.0, counts=None, seed=3)
    p = workspace.to_params(cfg)
    assert p == {"dataset": "digits", "profile": "linear", "ratio": "20", "seed": "3"}
    assert workspace.from_params(p) == cfg
    custom = DataConfig(dataset="imagefolder", data_dir="/d/x.zip", profile="custom", counts=[5, 10, 15], image_size=32)
    assert workspace.from_params(workspace.to_params(custom)) == custom


def test_every_data_field_has_a_url_name_and_round_trips():
    # a field added to DataConfig later must not break the pages (a KeyError once did)
    from dataclasses import fields

    assert {f.name for f in fields(DataConfig)} <= set(workspace.PARAM_NAMES)
    cfg = DataConfig(dataset="cifar10", profile="custom", counts=[5, 10], subset_seed=2, test_per_class=20, test_fraction=0.3)
    p = workspace.to_params(cfg)
    assert (p["subset"], p["testn"], p["test"]) == ("2", "20", "0.3")
    assert workspace.from_params(p) == cfg


def test_from_params_without_dataset_or_with_junk():
    assert workspace.from_params({}) is None
    assert workspace.from_params({"profile": "full"}) is None
    cfg = workspace.from_params({"dataset": "digits", "profile": "paper", "ratio": "abc", "seed": "x1"})
    assert cfg.ratio == DataConfig().ratio and cfg.seed == 0 and cfg.profile == "paper"


def test_saved_workspace_file(tmp_path, monkeypatch):
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path))
    assert workspace.load() == {} and workspace.saved_data() is None
    workspace.save(data=DataConfig(profile="step").to_dict())
    workspace.save(forms={"cfg_form": {"steps": 7}})
    assert workspace.saved_data().profile == "step"
    assert workspace.load()["forms"] == {"cfg_form": {"steps": 7}}
    assert (tmp_path / "workspace.json").exists()
    (tmp_path / "workspace.json").write_text("{broken")
    assert workspace.load() == {}


def test_cfg_models_order_and_labels(tmp_path):
    old_done = cfg_run(tmp_path, "old", "done", 250, 250)
    cancelled = cfg_run(tmp_path, "cancel", "cancelled", 7, 250)
    cfg_run(tmp_path, "nockpt", "cancelled", 3, 250, checkpoint=False)
    cfg_run(tmp_path, "live", "running", 100, 250)
    cfg_run(tmp_path, "other", "done", 10, 10, dataset="mnist")
    new_done = cfg_run(tmp_path, "new", "done", 500, 500)
    from core.store.runs import list_runs

    got = workspace.cfg_models(list_runs(tmp_path), "digits")
    assert [r.id for _, r in got] == [new_done.id, old_done.id, cancelled.id]
    labels = [lab for lab, _ in got]
    assert labels[0].endswith("· 500 steps") and "⚠" not in labels[0]
    assert labels[2] == f"{cancelled.id} · ⚠ CANCELLED, 7 of 250 steps"


def test_recent_duplicate():
    now = 1000.0
    run = SimpleNamespace(config={"kind": "cfg", "created": "x", "steps": 8, "data": {"dataset": "digits"}, "extra_default": 1})
    job = SimpleNamespace(kind="cfg", active=True, submitted=now - 30, run=run, id="j1")
    cfg = {"steps": 8, "data": {"dataset": "digits"}}
    assert workspace.recent_duplicate([job], "cfg", cfg, now=now) is job
    assert workspace.recent_duplicate([job], "cfg", {**cfg, "steps": 9}, now=now) is None
    assert workspace.recent_duplicate([job], "classifier", cfg, now=now) is None
    assert workspace.recent_duplicate([job], "cfg", cfg, now=now + 31) is None  # more than a minute ago
    job.active = False
    assert workspace.recent_duplicate([job], "cfg", cfg, now=now) is None


def test_the_validation_split_rides_in_the_url_bounded():
    cfg = DataConfig(dataset="digits", profile="paper", validation_fraction=0.1, validation_min=5)
    p = workspace.to_params(cfg)
    assert (p["val"], p["valn"]) == ("0.1", "5")
    assert workspace.from_params(p) == cfg
    notes: list[str] = []
    back = workspace.from_params({"dataset": "digits", "val": "0.9", "valn": "0"}, notes)
    assert (back.validation_fraction, back.validation_min) == (0.49, 1) and len(notes) == 2
