"""The experiment pipeline: study configs, bad input, and a tiny study end to end with resume."""

import json
import math
import os
import sys

import numpy as np
import pytest
import torch

from core.cli import main
from core.errors import ConfigError
from core.study.presets import PRESETS, preset
from core.study.config import StudyConfig
from core.study.plan import partial_counts, plan_study
from core.study.run import run_study

TINY = """
name = "tiny"
methods = ["none", "oversample", "cfg", "sd", "reweight", "logit-adjust", "posthoc-adjust", "cfg+logit-adjust"]
cfg_ws = [0.1]
classifiers = ["small"]
seeds = [0, 1]
real_fill = false
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
TINY_COUNTS = [2, 3, 4, 6, 8, 10, 14, 20, 30, 40]  # 137 images; filled to 40 each: 400
# partial fill half-way in log scale: round(√(n·40)) = 9, 11, 13, 15, 18, 20, 24, 28, 35, 40 -> 213 images
TINY_PARTIAL = [9, 11, 13, 15, 18, 20, 24, 28, 35, 40]

ROW_KEYS = {"method", "fill", "loss", "w", "classifier", "state", "errors", "reason", "steps", "images_seen", "train_size", "n_seeds",
            "seeds", "accuracy", "macro_f1", "minority_f1", "vs", "per_class_f1", "kid", "accuracy_binomial_hw95", "curve", "converged",
            "curve_last_gain", "converged_rule"}


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
    res = json.loads(out)
    assert res["state"] == "done" and res["budget"] == "steps" and res["test_size"] == 360
    rows = {r["method"]: r for r in res["rows"]}
    assert list(rows) == ["none", "oversample", "cfg@w=0.1", "sd", "reweight", "logit-adjust", "posthoc-adjust", "cfg@w=0.1+logit-adjust"]
    ok = [r for r in rows.values() if r["state"] in ("ok", "below_gate")]
    assert len(ok) == 7
    # a CFG model of 2 steps draws noise: its fill fails the generator gate (default thresholds), and so do the rows trained
    # on it, the partial fill included; that is a row state, not a failure (the study is done, exit 0, figures kept)
    low = {n for n, r in rows.items() if r["state"] == "below_gate"}
    assert low == {"cfg@w=0.1", "cfg@w=0.1+logit-adjust"} and rows["cfg@w=0.1"]["gate"]["passed"] is False
    gate = rows["cfg@w=0.1"]["gate"]
    assert gate["tail"] == ["0", "1", "2"] and set(gate["per_seed"]) == {"0", "1"} and gate["tail_consistency"] < 0.8
    assert gate["per_seed"]["0"]["n_tail"] == 38 + 37 + 36 and 0.0 <= gate["precision"] <= 1.0 and 0.0 <= gate["near_copy_rate"] <= 1.0
    # the partial fill is gated on the images it uses (issue 25): its own tail (the classes it fills most), its own figures
    partial = rows["cfg@w=0.1+logit-adjust"]["gate"]
    assert partial["passed"] is False and partial["images"] == "the images this partial fill uses" and partial != gate
    assert partial["per_seed"]["0"]["n_tail"] < gate["per_seed"]["0"]["n_tail"]
    assert "gate" not in rows["oversample"] and "gate" not in rows["none"]
    assert rows["sd"]["gate"]["passed"] is None  # unavailable: no fill finished, nothing measured
    assert {v["verdict"] for v in rows["sd"]["vs"].values()} == {"n/a"}  # no figures to judge: n/a, not "ungated"
    for r in ok:
        assert ROW_KEYS <= set(r) and r["classifier"] == "small" and r["seeds"] == [0, 1] and r["n_seeds"] == 2 and r["errors"] == {}
        assert 0.0 <= r["accuracy"]["mean"] <= 1.0 and r["accuracy"]["std"] >= 0.0 and len(r["accuracy"]["ci95"]) == 2
        assert r["accuracy"]["ci95"][0] <= r["accuracy"]["mean"] <= r["accuracy"]["ci95"][1]
        assert len(r["per_class_f1"]["mean"]) == 10
        # budget "steps": every method runs ⌊400/64⌋ = 6 steps of 64 images, whatever its set's size
        assert (r["steps"], r["images_seen"], r["batch_size"]) == (6, 384, 64)
        # compare_to = ["none", "oversample"], except against itself
        assert set(r["vs"]) == {"none", "oversample"} - {r["method"]}
        # budget curve: separate runs of ⌈6/8⌉, ⌈6/4⌉, ⌈6/2⌉ and 6 steps, averaged over the 2 seeds
        assert [p["steps"] for p in r["curve"]] == [1, 2, 3, 6] and all(p["n_seeds"] == 2 for p in r["curve"])
        assert r["curve"][-1]["accuracy"] == pytest.approx(r["accuracy"]["mean"])
        gain = r["curve"][3]["accuracy"] - r["curve"][2]["accuracy"]
        assert r["curve_last_gain"] == pytest.approx(gain) and r["converged"] is (gain < 0.01)
        if r["method"] in low:  # figures but no verdict, outside Holm
            assert {(v["verdict"], v["p_holm"], v["mde"]) for v in r["vs"].values()} == {("below gate", None, None)}
            continue
        assert all(v["metric"] == "accuracy" for v in r["vs"].values())
        # every cell saved its test logits, so the comparisons carry test-set noise (two-level bootstrap)
        for ref, v in r["vs"].items():
            assert v["test_noise"] is True and v["n"] == 2 and 0.0 <= v["p"] <= 1.0
            assert [d["steps"] for d in v["along_curve"]] == [1, 2, 3, 6]
            assert v["along_curve"][-1]["diff"] == pytest.approx(v["diff_mean"])
            if not (r["converged"] and rows[ref]["converged"]):  # 6 steps: labelled, not concluded, and outside Holm
                assert v["verdict"] == "under-trained" and v["p_holm"] is None and v["mde"] is None
            else:
                assert v["p_holm"] >= v["p"] and v["mde"] is not None
                assert v["verdict"] == ("inconclusive" if v["p_holm"] >= 0.05 else "better" if v["diff_mean"] > 0 else "worse")
        p = r["accuracy"]["mean"]
        k, z = round(p * 360), 1.959964  # Wilson interval on the nearest count of correct test images
        hw, centre = z * math.sqrt(k * (360 - k) / 360 + z * z / 4) / (360 + z * z), (k + z * z / 2) / (360 + z * z)
        assert r["accuracy_binomial_hw95"] == pytest.approx(hw, rel=1e-5)
        assert r["accuracy_binomial_ci95"] == pytest.approx([centre - hw, centre + hw], rel=1e-5)
    assert {n: rows[n]["train_size"] for n in ("none", "oversample", "reweight", "logit-adjust", "posthoc-adjust")} == \
        {"none": 137, "oversample": 400, "reweight": 137, "logit-adjust": 137, "posthoc-adjust": 137}
    assert (rows["reweight"]["fill"], rows["reweight"]["loss"], rows["posthoc-adjust"]["loss"]) == ("none", "reweight", "posthoc-adjust")
    # offline: no Inception weights, so the substitute is reported under its own name
    for name in ("none", "oversample", "reweight"):
        assert "fid" not in rows[name] and rows[name]["fd_judge"]["label"] == "FD (judge CNN features)"
        assert rows[name]["kid"]["extractor"] == "judge" and "FID" not in rows[name]["kid"]["label"]
    assert rows["none"]["fd_judge"]["n_images"] == 137 and rows["oversample"]["fd_judge"]["n_images"] == 400
    assert rows["reweight"]["fd_judge"] == rows["none"]["fd_judge"]  # the losses train on the imbalanced set itself
    sd = rows["sd"]
    assert sd["state"] == "unavailable" and sd["n_seeds"] == 0 and "Stable Diffusion" in sd["reason"] and sd["accuracy"]["mean"] is None
    combo = rows["cfg@w=0.1+logit-adjust"]
    assert (combo["fill"], combo["loss"], combo["w"]) == ("cfg", "logit-adjust", 0.1)
    # novelty of the generated images only: oversampled images are exact copies of training images
    assert rows["oversample"]["near_copy_rate"]["mean"] == 1.0 and rows["oversample"]["near_copy_rate"]["n_images"] == 400 - 137
    # digits are grayscale: no flips searched; oversampled copies are of their own class
    assert rows["oversample"]["cross_class_rate"]["mean"] == 0.0 and rows["oversample"]["mirrored_rate"]["mean"] == 0.0
    assert rows["cfg@w=0.1"]["near_copy_rate"]["n_images"] == 400 - 137 and "near_copy_rate" not in rows["none"]
    assert "near_copy_rate" not in combo and "near_copy_rate_mean" in (out_dir / "results.csv").read_text().splitlines()[0]
    # the CFG fill
    assert rows["cfg@w=0.1"]["fd_judge"]["n_images"] == 400 and (out_dir / "cfg" / "seed1" / "checkpoints").is_dir()
    assert [p["n_images"] for p in rows["cfg@w=0.1"]["per_class_fd_judge"]] == [38, 37, 36, 34, 32, 30, 26, 20, 10, 0]
    assert combo["train_size"] == sum(TINY_PARTIAL) == 213 and "fd_judge" not in combo
    counts = json.loads((out_dir / "cells" / "clf__cfg_w0.1+logit-adjust__small__seed0" / "results.json").read_text())["train_counts"]
    assert counts == TINY_PARTIAL
    # each seed trained on its own subset
    cfgs = [json.loads((out_dir / "cells" / f"clf__none__small__seed{s}" / "config.json").read_text()) for s in (0, 1)]
    assert [c["data"]["subset_seed"] for c in cfgs] == [0, 1] and cfgs[0]["train_set"]["counts"] == cfgs[1]["train_set"]["counts"]
    status = json.loads((out_dir / "status.json").read_text())
    assert status["state"] == "done" and status["cells"]["clf__none__small__seed1"] == {**status["cells"]["clf__none__small__seed1"], "state": "ok", "device": "cpu"}
    assert status["cells"]["fill__sd__seed0"]["state"] == "unavailable"
    csv = (out_dir / "results.csv").read_text().splitlines()
    assert csv[0].startswith("method,fill,loss,w,classifier,state,budget,steps,images_seen,train_size,n_seeds") and "fd_judge_mean" in csv[0]
    assert "vs_none_verdict" in csv[0] and "accuracy_ci95_lo" in csv[0] and len(csv) == 9
    results_before = (out_dir / "results.json").read_text()
    # the report (Results page) names every cell by its study method, with its steps and loss
    from core.study import tables as report

    df = report.classifier_results(lab_env)
    assert len(df) == 2 * len(ok)
    ph = df[df["method"] == "posthoc-adjust"]
    assert len(ph) == 2 and set(ph["loss"]) == {"posthoc-adjust"} and set(ph["steps"]) == {6}
    assert set(df[df["method"] == "reweight"]["loss"]) == {"reweight"} and set(df[df["method"] == "none"]["loss"]) == {"ce"}
    g = report.generation_results(lab_env)
    assert {"none", "oversample"} <= set(g["method"]) and set(g["seed"]) == {0, 1}

    # resume: nothing finished is retrained
    import core.train.batched as clf  # study cells train through core.train.batched.train_runs (one at a time on a CPU)

    calls = []
    real = clf.train_classifier
    monkeypatch.setattr(clf, "train_classifier", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    rc, out = _run_cli(capsys, "--config", str(cfg_path), "--out", str(out_dir), "--json")
    assert rc == 0 and calls == []
    again = {r["method"]: r for r in json.loads(out)["rows"]}
    assert again["oversample"]["accuracy"] == rows["oversample"]["accuracy"]
    # an interrupted cell (no results.json yet) is the only one trained on the next call
    (out_dir / "cells" / "clf__oversample__small__seed1" / "results.json").unlink()
    rc, out = _run_cli(capsys, "--config", str(cfg_path), "--out", str(out_dir), "--json")
    # (its budget-curve runs finished before: train_classifier returns their saved results at once)
    assert rc == 0 and [p.name for p in calls] == ["steps1", "steps2", "steps3", "clf__oversample__small__seed1"]
    assert [p.parent.name for p in calls[:3]] == ["clf__oversample__small__seed1"] * 3
    assert json.loads((out_dir / "results.json").read_text())["rows"] == json.loads(results_before)["rows"]
    # the text output names the rows below the gate, and the study still exits 0
    rc, out = _run_cli(capsys, "--config", str(cfg_path), "--out", str(out_dir))
    assert rc == 0 and "2 row(s) below the generator gate" in out and "  cfg@w=0.1 · small: below gate: " in out


def _small(**kw):
    base = dict(name="a", methods=["none"], seeds=[0], classifier={"epochs": 1, "batch_size": 64}, generation_metrics=False, real_fill=False,
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
        ({"cfg_ws": [-1.0]}, "cfg_ws = -1 is out of range: allowed from 0 to 50"),
        ({"budget": "flops"}, "Unknown budget"),
        ({"partial_fill": 0.0}, "partial_fill"),
        ({"methods": ["cfg+mixup"]}, "Unknown method 'cfg\\+mixup'"),
        ({"methods": ["posthoc-adjust"]}, "posthoc-adjust adjusts"),
        ({"classifier": {"loss": "reweight"}}, r"Unknown \[classifier\] option"),
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
    # issue 17 item 6: 5 seeds, native 8×8 digits, judge split, converged budgets, 2 CPU lanes, no Inception download
    assert q.data.dataset == "digits" and q.data.profile == "exponential" and q.data.ratio == 10 and q.seeds == [0, 1, 2, 3, 4]
    assert (q.data.image_size, q.data.judge_per_class, q.extractor, q.cpu_lanes) == (8, 30, "judge", 2)
    assert (q.classifier["steps"], q.classifier["batch_size"], q.cfg_train["steps"], q.curve_points, q.converged_gain) == (500, 32, 700, 2, 0.01)
    q4 = StudyConfig.from_toml(os.path.join(os.path.dirname(__file__), "..", "studies", "quick-4x.toml"))
    assert (q4.classifier["steps"], q4.classifier["warmup_steps"], q4.cfg_train["steps"], q4.cfg_train["warmup_steps"]) == (2000, 200, 2800, 200)
    assert {**q4.identity(), "name": "quick", "classifier": q.classifier, "cfg_train": q.cfg_train} == q.identity()  # nothing else differs
    for p in (q, preset("paper")):
        assert p.budget == "steps" and not p.fixed_subset and p.compare_to == ["none", "oversample", "real"]
        assert {"none", "oversample", "mixup", "cutmix", "cfg", "sd", "reweight", "logit-adjust", "posthoc-adjust"} <= set(p.methods)
        assert any(m.startswith("cfg+") for m in p.methods)
    assert q.classifiers == ["small"]
    p = preset("paper")
    # issue 25: a disjoint judge (500 per class) and a 10 % validation split leave 4050 per class: Table 1's shape at 400·(i+1)
    assert p.data.counts == [400 * (i + 1) for i in range(10)] and p.cfg_ws == [0.1, 7.5] and p.target == 4000
    assert (p.data.judge_per_class, p.data.validation_fraction, len(p.seeds)) == (500, 0.1, 5)
    assert q.data.validation_fraction == 0.1 and q.data.validation_min == 20 and "real" in [v.name for v in q.variants()]
    assert p.classifiers == ["resnet18", "resnet50"] and p.method_params["mixup"]["lam"] == 0.6
    root = os.path.join(os.path.dirname(__file__), "..", "studies")
    assert StudyConfig.from_dict({**q.to_dict(), "cpu_lanes": 1}).identity() == q.identity()  # where it runs is not what it is
    with pytest.raises(ConfigError, match="cpu_lanes"):
        StudyConfig.from_dict({**q.to_dict(), "cpu_lanes": 0})
    with pytest.raises(ConfigError, match="curve_points"):
        StudyConfig.from_dict({**q.to_dict(), "curve_points": 1})
    with pytest.raises(ConfigError, match="converged_gain"):
        StudyConfig.from_dict({**q.to_dict(), "converged_gain": float("nan")})
    for name in PRESETS:  # the example TOML files describe the same studies
        assert StudyConfig.from_toml(os.path.join(root, f"{name}.toml")).identity() == preset(name).identity()
    with pytest.raises(ConfigError, match="Unknown preset"):
        preset("huge")


def test_missing_generator_is_unavailable_with_its_reason(lab_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "core.generators.cfg", None)  # import fails as if the module were absent
    frame = run_study(_small(methods=["none", "cfg"], cfg_ws=[0.1, 7.5], cfg_train={"steps": 2, "batch_size": 8}), lab_env / "s")
    assert list(frame["method"]) == ["none", "cfg@w=0.1", "cfg@w=7.5"]
    assert list(frame["state"]) == ["ok", "unavailable", "unavailable"] and frame["accuracy_mean"][0] > 0
    assert all("CFG generator not available" in frame["reason"][i] for i in (1, 2))
    res = json.loads((lab_env / "s" / "results.json").read_text())
    assert res["state"] == "done"  # a method that cannot run here is not a failure
    assert res["rows"][1]["seeds"] == [] and res["rows"][1]["accuracy"] == {"mean": None, "std": None, "ci95": None}


def test_step_budget_is_equal_across_methods_and_epochs_is_not():
    counts = [2, 3, 4, 6, 8, 10, 14, 20, 30, 40]
    cfg = StudyConfig.from_dict({"name": "b", "methods": ["none", "oversample", "reweight", "posthoc-adjust", "oversample+logit-adjust"],
                                 "seeds": [0, 1, 2], "classifier": {"epochs": 3, "batch_size": 64, "warmup_epochs": 0.5}, "real_fill": False,
                                 "data": {"dataset": "digits", "profile": "custom", "counts": counts}})
    plan = plan_study(cfg, counts)
    assert plan.train_sizes == {"none": 137, "oversample": 400, "reweight": 137, "posthoc-adjust": 137, "oversample+logit-adjust": 213}
    clf = [spec for cid, spec in plan.specs.items() if cid.startswith("clf__") and "budget" in spec]
    assert len(clf) == 4 * 3  # posthoc-adjust trains nothing: it reuses the none model
    # the largest set (400) needs ⌊400/64⌋ = 6 steps an epoch: 3 epochs = 18 steps, warm-up 0.5·6 = 3 steps, for every method
    assert {json.dumps(s["budget"]) for s in clf} == {json.dumps({"steps": 18, "warmup_steps": 3})}
    deps = {c.id: c.deps for c in plan.cells}
    assert deps["clf__posthoc-adjust__small__seed2"] == ("clf__none__small__seed2",)
    assert deps["clf__oversample+logit-adjust__small__seed1"] == ("fill__oversample__seed1",)
    # classifier.steps wins over the epochs
    cfg.classifier["steps"] = 50
    assert {s["budget"]["steps"] for s in plan_study(cfg, counts).specs.values() if "budget" in s} == {50}
    # budget "epochs": each run takes its own epochs (none: 3·⌊137/64⌋ = 6 steps against 18)
    cfg.classifier.pop("steps")
    cfg.budget = "epochs"
    plan = plan_study(cfg, counts)
    assert all(s["budget"] == {} for s in plan.specs.values() if "budget" in s)
    assert plan.planned["none|small"] == {"steps": 6, "images_seen": 384, "train_size": 137, "batch_size": 64}
    assert plan.planned["oversample|small"]["steps"] == 18


def test_partial_fill_is_half_way_in_log_scale():
    assert partial_counts([1, 4, 16], 16, 0.5) == [4, 8, 16]  # √(1·16), √(4·16), 16
    assert partial_counts([1, 4, 16], 16, 1.0) == [16, 16, 16]
    assert partial_counts(TINY_COUNTS, 40, 0.5) == TINY_PARTIAL


def test_each_seed_draws_its_own_subset_and_fixed_subset_gives_one():
    from core.data.loading import load_dataset
    from core.data.profiles import apply_profile, target_counts

    base = {"name": "s", "methods": ["none"], "seeds": [0, 1, 2],
            "data": {"dataset": "digits", "profile": "exponential", "ratio": 10, "minority_order": "shuffled", "seed": 3}}
    cfg = StudyConfig.from_dict(base)
    ds = load_dataset(cfg.data)
    subsets = [apply_profile(ds.train, cfg.data_for_seed(s)) for s in cfg.seeds]
    counts = [target_counts(ds.train.counts(), cfg.data_for_seed(s)) for s in cfg.seeds]
    assert counts[0] == counts[1] == counts[2] == target_counts(ds.train.counts(), cfg.data)  # the minority classes stay data.seed's
    assert [x.counts() for x in subsets] == counts
    assert len({tuple(x.images.flatten().tolist()) for x in subsets}) == 3  # but each seed keeps other images
    fixed = StudyConfig.from_dict({**base, "fixed_subset": True})
    one = [apply_profile(ds.train, fixed.data_for_seed(s)) for s in fixed.seeds]
    assert all(torch.equal(x.images, one[0].images) for x in one)


def test_a_failing_cell_fails_its_row_and_the_exit_status_then_resume_reruns_it(lab_env, capsys, monkeypatch):
    from core.generators import baselines

    class Broken(baselines.BASELINES["oversample"]):
        def generate(self, *a, **k):
            raise RuntimeError("generator exploded")

    cfg = _small(methods=["none", "oversample", "mixup"], seeds=[0, 1], data={"dataset": "digits", "profile": "custom", "counts": TINY_COUNTS})
    path = lab_env / "f.toml"
    path.write_text(_toml(cfg))
    monkeypatch.setitem(baselines.BASELINES, "oversample", Broken)
    rc, out = _run_cli(capsys, "--config", str(path), "--out", str(lab_env / "f"), "--json")
    assert rc == 1  # non-zero, after every row was written
    res = json.loads(out)
    rows = {r["method"]: r for r in res["rows"]}
    assert res["state"] == "failed" and res["cells"]["failed"] == 4  # 2 fills + the 2 classifiers they block
    bad = rows["oversample"]
    assert bad["state"] == "failed" and bad["n_seeds"] == 0 and set(bad["errors"]) == {"0", "1"}
    assert "generator exploded" in bad["errors"]["0"] and bad["accuracy"]["mean"] is None
    assert rows["none"]["state"] == rows["mixup"]["state"] == "ok" and rows["mixup"]["n_seeds"] == 2
    assert rows["mixup"]["vs"]["oversample"] == {"metric": "accuracy", "diff_mean": None, "ci95": None, "p": None, "p_holm": None,
                                                 "mde": None, "n": 0, "test_noise": False, "verdict": "n/a",  # no seed to pair
                                                 "along_curve": [], "sign_changes": False,
                                                 "minority_f1": {**rows["mixup"]["vs"]["oversample"]["minority_f1"], "diff_mean": None}}
    assert rows["mixup"]["vs"]["oversample"]["minority_f1"]["verdict"] == "n/a"
    assert rows["mixup"]["vs"]["none"]["diff_mean"] is not None
    status = json.loads((lab_env / "f" / "status.json").read_text())
    assert status["state"] == "failed" and status["cells"]["fill__oversample__seed0"]["state"] == "failed"
    assert "generator exploded" in status["cells"]["fill__oversample__seed0"]["error"]
    assert main(["experiment", "--config", str(path), "--out", str(lab_env / "f")]) == 1  # the table form too
    capsys.readouterr()
    # resume re-runs the failed cells only
    monkeypatch.setitem(baselines.BASELINES, "oversample", Broken.__mro__[1])
    import core.train.batched as clf  # study cells train through core.train.batched.train_runs (one at a time on a CPU)

    calls = []
    real = clf.train_classifier
    monkeypatch.setattr(clf, "train_classifier", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    rc, out = _run_cli(capsys, "--config", str(path), "--out", str(lab_env / "f"), "--json")
    # the two failed cells, each after its budget-curve runs (curves/<cell id>/steps<k>)
    cells = sorted({p.name if p.name.startswith("clf__") else p.parent.name for p in calls})
    assert rc == 0 and cells == ["clf__oversample__small__seed0", "clf__oversample__small__seed1"] and len(calls) == 2 * 4
    assert {r["method"]: r["state"] for r in json.loads(out)["rows"]} == {"none": "ok", "oversample": "ok", "mixup": "ok"}


def _toml(cfg: StudyConfig) -> str:
    """A study TOML for the few keys _small sets (tomli_w is not a dependency)."""
    d = cfg.to_dict()
    data = "\n".join(f"{k} = {json.dumps(d['data'][k])}" for k in ("dataset", "profile", "ratio", "counts") if d["data"][k] is not None)
    clf = "\n".join(f"{k} = {json.dumps(v)}" for k, v in d["classifier"].items())
    return (f"name = {json.dumps(d['name'])}\nmethods = {json.dumps(d['methods'])}\nseeds = {json.dumps(d['seeds'])}\n"
            f"generation_metrics = false\nreal_fill = {json.dumps(d['real_fill'])}\n[data]\n{data}\n[classifier]\n{clf}\n")


def test_paired_verdicts_on_constructed_numbers():
    from core.study.rows import add_comparisons

    def row(method, accs):  # converged rows: these verdicts stand (tests/test_curves.py covers the label of unconverged ones)
        return {"method": method, "classifier": "small", "_acc": dict(enumerate(accs)), "converged": True}

    rows = [row("none", [0.80, 0.81, 0.82]), row("a", [0.90, 0.92, 0.94]), row("b", [0.79, 0.80, 0.81]),
            row("c", [0.85, 0.76, 0.84]), row("d", [0.95])]
    notes = add_comparisons(rows, ["none", "oversample"])
    vs = {r["method"]: r["vs"].get("none") for r in rows}
    assert rows[0]["vs"] == {} and notes and "oversample" in notes[0]
    # Without per-image results these rows fall back to a paired t over seeds, then Holm over the 3 comparisons that have a p.
    # a − none = 0.10, 0.11, 0.12: mean 0.11, sd 0.01, t_{0.975,2} = 4.3027 -> ± 4.3027·0.01/√3 = 0.02484; t = 19.05, p = 0.002744
    assert vs["a"]["diff_mean"] == pytest.approx(0.11) and vs["a"]["ci95"] == pytest.approx([0.11 - 0.024841, 0.11 + 0.024841], abs=1e-5)
    assert vs["a"]["verdict"] == "better" and vs["a"]["metric"] == "accuracy"
    assert set(vs["a"]) == {"metric", "diff_mean", "ci95", "p", "p_holm", "mde", "n", "test_noise", "verdict", "along_curve", "sign_changes",
                            "minority_f1"}
    assert vs["a"]["test_noise"] is False
    # b − none = −0.01 each seed: sd 0 (up to rounding), p ≈ 0 -> Holm 3·p ≈ 0 -> worse
    assert vs["b"]["verdict"] == "worse" and vs["b"]["diff_mean"] == pytest.approx(-0.01) and vs["b"]["p_holm"] < 1e-6
    # Holm, m = 3: b (0) first, then a: 2·0.002744 = 0.005488, then c: max(0.005488, 1·p_c)
    assert vs["a"]["p_holm"] == pytest.approx(2 * 0.002744, rel=1e-3)
    # c − none = 0.05, −0.05, 0.02: mean 0.00667, sd 0.0513 -> ± 0.1274 covers 0; t = 0.225, p = 0.843
    assert vs["c"]["verdict"] == "inconclusive" and vs["c"]["ci95"][0] < 0 < vs["c"]["ci95"][1]
    assert vs["c"]["p_holm"] == pytest.approx(0.843, abs=0.002)
    # its MDE at 80 % power, Bonferroni level 0.05/3, t quantiles at 2 df: (t_{1-0.05/6} + t_0.8)·sd/√3
    assert vs["c"]["mde"] == pytest.approx((7.648804 + 1.060660) * 0.051316 / np.sqrt(3), rel=1e-3)
    # one shared seed: no CI, no p, no verdict
    assert vs["d"]["diff_mean"] == pytest.approx(0.15) and vs["d"]["ci95"] is None and vs["d"]["p"] is None
    assert vs["d"]["verdict"] == "n/a" and vs["d"]["mde"] is None
