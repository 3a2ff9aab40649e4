"""Tail-aware CFG: the CBDM regulariser (Qin et al. 2023) and per-class guidance w."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.diffusion import cbdm
from core.diffusion.guidance import per_class_w
from core.errors import ConfigError


class _TinyEps(torch.nn.Module):
    """ε(x, y) = W·x + E[y]: a class embedding per label, so each branch owns its rows of E."""

    def __init__(self, classes=4, dim=6):
        super().__init__()
        torch.manual_seed(0)
        self.W = torch.nn.Linear(dim, dim, bias=False)
        self.E = torch.nn.Embedding(classes + 1, dim)

    def forward(self, x, y):
        return self.W(x) + self.E(y)


def test_cbdm_term_is_zero_at_tau_zero_and_matches_the_formula():
    ec, eb = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    t = torch.tensor([0, 250, 500, 1000])
    assert float(cbdm.cbdm_regulariser(ec, eb, t, 1000, 0.0)) == 0.0
    # by hand: mean over samples of (t/T)·τ·(1 + ¼)·mean-square difference
    msd = ((ec - eb) ** 2).mean(dim=(1, 2, 3))
    expected = float(((t / 1000 * 2.0) * 1.25 * msd).mean())
    assert float(cbdm.cbdm_regulariser(ec, eb, t, 1000, 2.0)) == pytest.approx(expected, rel=1e-6)
    # samples whose label was dropped take no regulariser
    keep = torch.tensor([True, False, True, False])
    expected_kept = float(((t / 1000 * 2.0) * 1.25 * msd * keep).mean())
    assert float(cbdm.cbdm_regulariser(ec, eb, t, 1000, 2.0, keep=keep)) == pytest.approx(expected_kept, rel=1e-6)
    assert float(cbdm.cbdm_regulariser(ec, eb, t, 1000, 2.0, keep=torch.zeros(4, dtype=torch.bool))) == 0.0


def test_cbdm_gradients_flow_as_stated_on_a_tiny_model():
    model = _TinyEps()
    x, t = torch.randn(3, 6), torch.tensor([100, 500, 900])
    y, y_bal = torch.tensor([0, 0, 1]), torch.tensor([2, 3, 3])  # disjoint rows of E
    for term in ("reg", "com"):
        model.zero_grad()
        ec, eb = model(x, y), model(x, y_bal)
        ec.retain_grad()
        eb.retain_grad()
        reg, com = cbdm.cbdm_terms(ec, eb, t, 1000, 1.0)
        (reg if term == "reg" else com).backward()
        rows_y = model.E.weight.grad[[0, 1]].abs().sum()
        rows_bal = model.E.weight.grad[[2, 3]].abs().sum()
        if term == "reg":  # τ term: only the conditional branch ε(x_t, y)
            assert ec.grad.abs().sum() > 0 and (eb.grad is None or float(eb.grad.abs().sum()) == 0.0)
            assert rows_y > 0 and float(rows_bal) == 0.0
        else:  # ¼ commitment term: only the y' branch
            assert eb.grad.abs().sum() > 0 and (ec.grad is None or float(ec.grad.abs().sum()) == 0.0)
            assert rows_bal > 0 and float(rows_y) == 0.0
    # the combined term: d/dε(y) = 2·(t/T)·τ·(ε(y) − ε(y'))/(B·D); d/dε(y') is ¼ of the mirror image
    ec = torch.randn(2, 3, requires_grad=True)
    eb = torch.randn(2, 3, requires_grad=True)
    tt = torch.tensor([1000, 500])
    cbdm.cbdm_regulariser(ec, eb, tt, 1000, 1.0).backward()
    w = (tt / 1000).view(-1, 1)
    assert torch.allclose(ec.grad, 2 * w * (ec - eb).detach() / 6)
    assert torch.allclose(eb.grad, 0.25 * 2 * w * (eb - ec).detach() / 6)


def test_cbdm_targets_follow_train_frequencies_or_uniform():
    counts = torch.tensor([10, 0, 90])
    g = torch.Generator().manual_seed(0)
    y = cbdm.draw_targets(counts, 20_000, "train", g)
    assert (y == 1).sum() == 0 and abs(float((y == 2).float().mean()) - 0.9) < 0.01
    y = cbdm.draw_targets(counts, 20_000, "uniform", g)
    assert (y == 1).sum() == 0 and abs(float((y == 0).float().mean()) - 0.5) < 0.015
    with pytest.raises(ConfigError, match="cbdm_target"):
        cbdm.check_cbdm(1.0, "balanced")
    with pytest.raises(ConfigError, match="cbdm_tau"):
        cbdm.check_cbdm(-1.0, "train")


def test_cbdm_training_records_its_settings_and_costs_one_more_pass(tmp_path):
    from core.train.cfg_unet import CFGTrainConfig, train_cfg

    calls = []
    cfg = CFGTrainConfig(steps=2, batch_size=4, preview_every=0, preview_steps=1, checkpoint_every=0, cbdm_tau=1.0, cbdm_target="uniform")
    from core.nets import unet

    real_build = unet.build_unet

    def counting_build(*a, **k):
        m = real_build(*a, **k)
        m.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]) if mod.training else None)
        return m

    import core.train.cfg_unet as tc

    old = tc.build_unet
    tc.build_unet = counting_build
    try:
        train_cfg(cfg, tmp_path / "run")
    finally:
        tc.build_unet = old
    assert calls == [8, 8]  # ε(x_t, y) and ε(x_t, y') batched: 2 × batch 4 per step
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["cbdm_tau"] == 1.0 and conf["cbdm_target"] == "uniform"


def test_per_class_w_rule():
    assert per_class_w(2.0, [100, 25, 4], w_gamma=0.5) == pytest.approx([2.0, 4.0, 10.0])
    assert per_class_w(2.0, [100, 25, 4], w_gamma=0.5, w_max=6.0) == pytest.approx([2.0, 4.0, 6.0])
    assert per_class_w(2.0, [100, 25, 4]) == [2.0, 2.0, 2.0]
    assert per_class_w(0.0, [1, 2, 3], w_per_class=[1, 0, 7.5]) == [1.0, 0.0, 7.5]
    with pytest.raises(ConfigError, match="3 classes"):
        per_class_w(1.0, [1, 2, 3], w_per_class=[1, 2])


def test_per_class_w_reaches_the_sampler_one_value_per_image(tmp_path, monkeypatch):
    from core.generators import cfg as gcfg
    from core.train.cfg_unet import CFGTrainConfig, train_cfg
    from core.data.loading import DataConfig

    run = train_cfg(CFGTrainConfig(data=DataConfig(profile="custom", counts=[2, 4, 8, 16, 32, 64, 100, 100, 100, 100]),
                                   steps=1, batch_size=4, preview_every=0, preview_steps=1, checkpoint_every=0), tmp_path / "run")
    seen = []
    real_sample = gcfg.sample

    def spy(eps_fn, labels, seeds, shape, null_label, w=0.0, **kw):
        seen.append((labels.clone(), w.clone() if isinstance(w, torch.Tensor) else w))
        return real_sample(eps_fn, labels, seeds, shape, null_label, w=w, **{**kw, "steps": 1})

    monkeypatch.setattr(gcfg, "sample", spy)
    gen = gcfg.CFGGenerator(run, w=1.0, w_gamma=0.5, w_max=6.0, sampler="ddim", steps=1, batch_size=3)
    assert gen.class_w == pytest.approx([1.0 * (100 / n) ** 0.5 if (100 / n) ** 0.5 <= 6 else 6.0 for n in [2, 4, 8, 16, 32, 64, 100, 100, 100, 100]])
    out = gen.generate(1, 5, seed=0)  # class 1 (4 images): w = (100/4)^0.5 = 5 for every image, batches of 3 and 2
    assert [len(w) for _, w in seen] == [3, 2]
    assert all(torch.allclose(w, torch.full((len(w),), 5.0)) for _, w in seen)
    assert set(out.provenance) == {"cfg@w_c=1*(n_max/n_c)^0.5<=6"}
    seen.clear()
    gen.sample_batch(torch.tensor([0, 1, 9]), [0, 1, 2])  # mixed classes: one w per image, each its class's
    labels, w = seen[0]
    assert w.tolist() == pytest.approx([6.0, 5.0, 1.0])
    # the explicit list, through the sample CLI
    from core.cli import main

    monkeypatch.setattr(gcfg, "sample", real_sample)
    assert main(["sample", "--run", str(run), "--classes", "0,9", "--n", "1", "--w-per-class", "4,0,0,0,0,0,0,0,0,0.5",
                 "--sampler", "ddim", "--sample-steps", "1", "--out", str(tmp_path / "s")]) == 0
    params = json.loads((tmp_path / "s" / "params.json").read_text())
    assert params["w_per_class"][0] == 4.0 and params["w_per_class"][9] == 0.5
    with np.load(tmp_path / "s" / "samples.npz") as z:
        assert z["provenance"][0].startswith("cfg@w_c=[4,0,")


def test_guidance_runner_scores_near_copies_against_the_runs_own_data(tmp_path, monkeypatch, capsys):
    from core.jobs import runners as job_runners
    from core.metrics import generation, novelty
    from core.train.cfg_unet import CFGTrainConfig, train_cfg
    from core.data.loading import DataConfig

    class Pixels:
        label = "pixels (test)"

        def features(self, images):
            return novelty.pixel_vectors(images).astype(np.float64)

    monkeypatch.setattr(generation, "get_extractor", lambda *a, **k: (Pixels(), ""))
    data = DataConfig(profile="exponential", ratio=50)
    run = train_cfg(CFGTrainConfig(data=data, steps=1, batch_size=4, preview_every=0, preview_steps=1, checkpoint_every=0), tmp_path / "run")
    # the page's data settings differ (paper profile): the scorer must use the run's own (exponential: class 1 keeps 4 images)
    score = job_runners._novelty_scorer(run, {"data": DataConfig(profile="paper").to_dict(), "class_idx": 1}, "cpu")
    train, _, _ = novelty.held_out_split(data)
    copies = train.of_class(1).images.repeat(2, 1, 1, 1)  # 8 exact copies of the 4 training images
    out = score(copies)
    assert out["near_copy_rate"] == 1.0 and out["n_train"] == 4 and out["precision"] is not None
    assert out["features"] == "pixels (test)"
    # the novelty CLI takes the same data settings from --run
    from core.cli import main

    assert main(["dataset", "--profile", "exponential", "--ratio", "50", "--export", str(tmp_path / "exp"), "--json"]) == 0
    capsys.readouterr()
    assert main(["novelty", "--run", str(run), "--images", str(tmp_path / "exp"), "--extractor", "none", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["near_copy_rate"] == 1.0 and out["per_class"]["1"]["n"] == 4
    assert main(["novelty", "--run", str(tmp_path), "--images", str(tmp_path / "exp"), "--extractor", "none"]) == 2
