"""Batched training (core.train.batched): K runs as one computation equal the same K runs apart.

Three runs of different length (60, 40 and 60 steps: the short one leaves the batch), with their
own seeds, learning rates, losses (plain, class-balanced with a mixup fill's soft labels and
synthetic weights, logit-adjusted) and training sets. Per-step losses are recorded on each run's
own ``ClassifierLoss``; the test fails when batched and apart drift more than 1e-4 in any of the
first 50 steps, or when a final accuracy differs by more than one test image."""

import json

import numpy as np
import pytest
import torch

from core.callbacks import Callbacks
from core.store.checkpoint import checkpoint_path, load_checkpoint
from core.data.loading import DataConfig, load_dataset
from core.errors import ConfigError
from core.train import losses as losses_mod
from core.train.batched import BatchJob, batching_on, compatible, train_batched, train_runs
from core.train.classifier import ClassifierConfig, train_classifier

# Digits at their native 8×8 (the quick preset's size): the default 16×16 upscale costs 4× the convolution
# work and changes nothing the equivalence depends on (the same steps, seeds, losses, epochs and files).
DATA = DataConfig(dataset="digits", image_size=8, profile="exponential", ratio=10)


@pytest.fixture(scope="module")
def sets():
    from core.generators.balance import balance, balanced_train_set, train_set_info
    from core.data.profiles import apply_profile
    from core.generators.baselines import MixupGenerator

    ds = load_dataset(DATA)
    imb = apply_profile(ds.train, DATA)
    mixed = balance(imb, MixupGenerator(imb, lam=0.6, pairing="inter"))
    assert mixed.soft_labels is not None
    return ds, [(imb, train_set_info("none")), (mixed, train_set_info("mixup", {"lam": 0.6})),
                (balanced_train_set(imb, "oversample", seed=2), train_set_info("oversample"))]


def _jobs(root, sets, steps=(60, 40, 60), **kw):
    base = dict(data=DATA, batch_size=64, device="cpu", eval_every=0, warmup_steps=5, precision="fp64")
    cfgs = [ClassifierConfig(**{**base, "seed": 0, "steps": steps[0], "lr": 0.05, **kw}),
            ClassifierConfig(**{**base, "seed": 1, "steps": steps[1], "lr": 0.08, "loss": "reweight", "synthetic_weight": 0.5, **kw}),
            ClassifierConfig(**{**base, "seed": 2, "steps": steps[2], "lr": 0.03, "loss": "logit-adjust", "label_smoothing": 0.1, **kw})]
    return [BatchJob(c, root / f"run{i}", s, info) for i, (c, (s, info)) in enumerate(zip(cfgs, sets[1]))]


@pytest.fixture
def loss_log(monkeypatch):
    """Every ClassifierLoss made, in order, each with the losses it returned."""
    made = []
    orig_init, orig_call = losses_mod.ClassifierLoss.__init__, losses_mod.ClassifierLoss.__call__

    def init(self, *a, **k):
        orig_init(self, *a, **k)
        self.log = []
        made.append(self)

    def call(self, *a, **k):
        out = orig_call(self, *a, **k)
        self.log.append(float(out.detach()))
        return out

    monkeypatch.setattr(losses_mod.ClassifierLoss, "__init__", init)
    monkeypatch.setattr(losses_mod.ClassifierLoss, "__call__", call)
    return made


def _apart(jobs, ds):
    return [train_classifier(j.cfg, j.run_dir, train_set=j.train_set, dataset=ds, train_set_info=j.train_set_info, resume=True) for j in jobs]


def test_batched_equals_apart(tmp_path, sets, loss_log):
    ds = sets[0]
    apart = _apart(_jobs(tmp_path / "apart", sets), ds)
    apart_losses = [l.log for l in loss_log]
    del loss_log[:]
    batched = train_batched(_jobs(tmp_path / "batched", sets), ds)
    batched_losses = [l.log for l in loss_log]
    assert [len(l) for l in apart_losses] == [len(l) for l in batched_losses] == [60, 40, 60]
    for a, b in zip(apart_losses, batched_losses):
        assert np.max(np.abs(np.array(a[:50]) - np.array(b[:50]))) < 1e-4
    n_test = len(ds.test)
    for a, b in zip(apart, batched):
        assert abs(a["accuracy"] - b["accuracy"]) * n_test <= 1 + 1e-9
        assert set(a) == set(b) and a["steps"] == b["steps"] and a["train_counts"] == b["train_counts"]
    # the test can fail: two seeds of the same run differ far beyond the tolerance
    assert np.max(np.abs(np.array(apart_losses[0][:50]) - np.array(apart_losses[2][:50]))) > 1e-2
    # each run's files are what train_classifier writes
    for i, s in enumerate((60, 40, 60)):
        a_dir, b_dir = tmp_path / "apart" / f"run{i}", tmp_path / "batched" / f"run{i}"
        for f in ("config.json", "status.json", "metrics.jsonl", "results.json", "test_logits.safetensors"):
            assert (b_dir / f).exists(), f
        assert json.loads((b_dir / "status.json").read_text())["state"] == "done"
        rows_a = [json.loads(l) for l in (a_dir / "metrics.jsonl").read_text().splitlines()]
        rows_b = [json.loads(l) for l in (b_dir / "metrics.jsonl").read_text().splitlines()]
        assert [(r["epoch"], r["step"]) for r in rows_a] == [(r["epoch"], r["step"]) for r in rows_b]
        assert all(r["lr"] == pytest.approx(q["lr"], rel=1e-12) for r, q in zip(rows_a, rows_b) if not r.get("final"))
        wa, sa, ca = load_checkpoint(checkpoint_path(a_dir / "checkpoints"))
        wb, sb, cb = load_checkpoint(checkpoint_path(b_dir / "checkpoints"))
        assert sa["step"] == sb["step"] == s and set(wa) == set(wb) and ca == cb
        assert sa["scheduler"] == sb["scheduler"]  # BN running statistics are per model and close to the apart run's
        assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=2e-3, rtol=1e-3) for k in wa if "running" in k)


def test_interrupted_batch_resumes_per_run(tmp_path, sets):
    """Resume granularity: per run and epoch checkpoint. A run started apart (an old folder) and stopped
    resumes inside a batch; a stopped batch resumes to the uninterrupted batch's results."""
    ds = sets[0]
    short = (27, 18, 27)  # run 0: 9 steps an epoch (581 images), runs 1 and 2: 22 (1,440 images)
    ref = train_batched(_jobs(tmp_path / "ref", sets, short), ds)
    jobs = _jobs(tmp_path / "part", sets, short)
    seen = []
    j0 = jobs[0]
    stop_apart = Callbacks(on_metrics=seen.append, should_stop=lambda: len(seen) >= 1)
    assert train_classifier(j0.cfg, j0.run_dir, callbacks=stop_apart, train_set=j0.train_set, dataset=ds, train_set_info=j0.train_set_info)["cancelled"]
    seen.clear()
    stop = Callbacks(on_metrics=seen.append, should_stop=lambda: len(seen) >= 1)  # after run 0's second epoch
    part = train_batched(jobs, ds, callbacks=stop)
    assert [bool(r and r.get("cancelled")) for r in part] == [True, True, True]
    assert [json.loads((j.run_dir / "status.json").read_text())["step"] for j in jobs] == [18, 0, 0]
    resumed = train_batched(_jobs(tmp_path / "part", sets, short), ds)
    for a, b in zip(ref, resumed):
        assert abs(a["accuracy"] - b["accuracy"]) * len(ds.test) <= 1 + 1e-9
        assert b["final_loss"] == pytest.approx(a["final_loss"], abs=1e-4) and b["steps"] == a["steps"]
    # finished runs are not retrained
    assert train_batched(_jobs(tmp_path / "part", sets, short), ds) == resumed


def test_batching_policy_and_limits(tmp_path, sets, monkeypatch):
    small = ClassifierConfig(data=DATA, device="cpu")
    monkeypatch.delenv("IMBALANCE_LAB_BATCHED", raising=False)
    assert batching_on(small, 10, 1)[0] is False  # CPU: measured not to pay, the simple path stays
    assert batching_on(ClassifierConfig(data=DATA, device="cuda"), 10, 1)[0] is True  # 0.3 M parameters
    off = batching_on(ClassifierConfig(data=DATA, arch="resnet18", device="cuda"), 10, 3)
    assert off[0] is False and "11.2 M" in off[1]
    monkeypatch.setenv("IMBALANCE_LAB_BATCHED", "on")
    assert batching_on(small, 10, 1)[0] is True
    monkeypatch.setenv("IMBALANCE_LAB_BATCHED", "maybe")
    with pytest.raises(ConfigError, match="IMBALANCE_LAB_BATCHED"):
        batching_on(small, 10, 1)
    jobs = _jobs(tmp_path, sets)
    sizes = [len(j.train_set) for j in jobs]
    assert compatible(jobs, sizes) is None
    assert "batch size" in compatible(jobs[:1] + _jobs(tmp_path, sets, batch_size=32)[1:], sizes)
    assert "MixUp" in compatible(_jobs(tmp_path, sets, train_mix="mixup"), sizes)
    with pytest.raises(ConfigError, match="cannot train as one computation"):
        train_batched(_jobs(tmp_path / "mix", sets, train_mix="cutmix"), sets[0])


def _keys(x, path=""):
    """Every field path of a JSON value (list items merged), e.g. {"rows[].accuracy.mean", ...}."""
    if isinstance(x, dict):
        return {path} | {k2 for k, v in x.items() for k2 in _keys(v, f"{path}.{k}")}
    if isinstance(x, list):
        return {path} | {k2 for v in x for k2 in _keys(v, path + "[]")}
    return {path}


@pytest.mark.timeout(900)
def test_a_study_batched_has_the_same_json_fields_and_rows(tmp_path, monkeypatch):
    """A study's classifier cells batched (IMBALANCE_LAB_BATCHED=on, as on a GPU) write a study JSON with
    the same fields, cells, rows, steps and curves as the same study trained one run at a time."""
    from core.study.run import load_results, run_study
    from tests.test_study_executors import EXACT, small_study

    from core.train import batched as batched_mod

    calls = []
    orig = batched_mod.train_batched
    monkeypatch.setattr(batched_mod, "train_batched", lambda jobs, *a, **k: calls.append(len(jobs)) or orig(jobs, *a, **k))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for mode in ("off", "on"):
            monkeypatch.setenv("IMBALANCE_LAB_BATCHED", mode)
            run_study(small_study(), tmp_path / mode)
            out[mode] = load_results(tmp_path / mode)
    finally:
        torch.set_num_threads(threads)
    a, b = out["off"], out["on"]
    assert calls == [4, 4, 4]  # "on": each classifier cell's 3 curve runs and its main run as one batch; "off": none
    assert a["state"] == b["state"] == "done" and a["cells"] == b["cells"]
    volatile = {".created", ".finished", ".wall_s"}  # timings may move; nothing else may
    assert _keys(a) - volatile == _keys(b) - volatile
    assert [{k: r.get(k) for k in EXACT} for r in a["rows"]] == [{k: r.get(k) for k in EXACT} for r in b["rows"]]
    for cid in ("clf__none__small__seed0", "clf__oversample__small__seed0"):
        ra = json.loads((tmp_path / "off" / "cells" / cid / "results.json").read_text())
        rb = json.loads((tmp_path / "on" / "cells" / cid / "results.json").read_text())
        assert set(ra) == set(rb) and [p["steps"] for p in ra["curve"]] == [p["steps"] for p in rb["curve"]] == [2, 3, 6]
        assert all(np.isfinite(p["accuracy"]) for p in rb["curve"])
        assert (tmp_path / "on" / "curves" / cid / "steps6" / "test_logits.safetensors").exists()
