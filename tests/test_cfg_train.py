"""The CFG training loop and generator on a tiny digits run: loss, files, resume, NaN, OOM, sampling."""

import shutil

import numpy as np
import pytest
import torch

import core.train.cfg_unet as cfgmod
from core.generators.balance import balance
from core.callbacks import Callbacks
from core.store.checkpoint import checkpoint_path, load_checkpoint
from core.data.imageset import ImageSet
from core.data.loading import DataConfig, prepare
from core.errors import Cancelled, ConfigError, TrainingError, WeightsMissingError
from core.generators.base import image_seed
from core.generators.registry import build_generator
from core.generators.cfg import CFGGenerator, guidance_sweep, load_samples, save_samples
from core.store.runs import Run
from core.train.cfg_unet import CFGTrainConfig, train_cfg

# digits at their native 8×8 (as the quick preset): the 16×16 upscale quadruples every step and every sample
DATA = DataConfig(dataset="digits", image_size=8, profile="paper")


def small_cfg(**kw) -> CFGTrainConfig:
    base = dict(data=DATA, preset="tiny", steps=40, batch_size=16, lr=1e-3, warmup_steps=5, log_every=5,
                checkpoint_every=0, preview_every=0, preview_per_class=2, preview_steps=2, seed=3)
    base.update(kw)
    return CFGTrainConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cfg") / "run"
    rows, previews = [], []
    cfg = small_cfg(steps=150, batch_size=32, log_every=10, checkpoint_every=50, preview_every=100, preview_steps=3)
    train_cfg(cfg, run_dir, Callbacks(on_metrics=rows.append, on_preview=previews.append))
    return run_dir, rows, previews


def test_loss_falls_and_run_folder_is_complete(trained):
    run_dir, rows, previews = trained
    run = Run(run_dir)
    df = run.metrics()
    assert list(df["step"]) == list(range(10, 151, 10))
    assert {"loss", "lr", "images_per_s"} <= set(df.columns)
    assert df["loss"].iloc[-3:].mean() < 0.5 * df["loss"].iloc[:2].mean()
    assert rows[-1]["step"] == 150 and (df["images_per_s"] > 0).all()
    assert run.status["state"] == "done" and run.status["step"] == 150
    assert run.config["kind"] == "cfg" and run.config["preset"] == "tiny"
    weights, state, config = load_checkpoint(checkpoint_path(run.checkpoints, "latest"))
    assert state["step"] == 150 and "optimizer" in state and "rng" in state and "lr_scheduler" in state
    assert any(k.startswith("ema.") for k in weights) and any(k.startswith("model.") for k in weights)
    assert config["classes"] == [str(i) for i in range(10)] and config["null_label"] == 10
    assert checkpoint_path(run.checkpoints, "best") is not None
    # previews: at step 100 and at the end, one row per class
    assert [p.name for p in previews] == ["preview_0000100.png", "preview_0000150.png"]
    from PIL import Image

    img = Image.open(previews[-1])
    assert img.height == 10 * 8 + 11 and img.width == 2 * 8 + 3


def test_generator_is_seeded_and_batch_invariant(trained):
    run_dir, _, _ = trained
    a = CFGGenerator(run_dir, w=1.0, steps=4, batch_size=2).generate(3, 5, seed=1)
    b = CFGGenerator(run_dir, w=1.0, steps=4, batch_size=5).generate(3, 5, seed=1)
    c = CFGGenerator(run_dir, w=1.0, steps=4, batch_size=5).generate(3, 5, seed=2)
    assert a.images.shape == (5, 1, 8, 8) and a.labels.tolist() == [3] * 5
    assert (a.images.int() - b.images.int()).abs().max() <= 1
    assert (a.images.float() - c.images.float()).abs().mean() > 1
    assert set(a.provenance) == {"cfg@w=1"}
    # the first 2 images of a request for 5 are the images of a request for 2
    d = CFGGenerator(run_dir, w=1.0, steps=4).generate(3, 2, seed=1)
    assert (d.images.int() - a.images[:2].int()).abs().max() <= 1


def test_guidance_sweep_rows_are_w_columns_are_seeds(trained):
    run_dir, _, _ = trained
    grid = guidance_sweep(run_dir, 2, [0.0, 1.0, 7.5], [4, 5], steps=3)
    assert grid.shape == (3, 2, 1, 8, 8) and grid.dtype == torch.uint8
    gen = CFGGenerator(run_dir, w=7.5, steps=3)
    direct = gen.sample_batch(torch.tensor([2, 2]), [4, 5])
    assert (grid[2].int() - direct.int()).abs().max() <= 1
    assert (grid[0].float() - grid[2].float()).abs().mean() > 1  # w changes the images


def test_balance_fills_minorities_with_cfg(trained):
    run_dir, _, _ = trained
    _, train = prepare(DATA)
    gen = build_generator("cfg", train, run_dir=run_dir, w=0.1, steps=2)
    out = balance(train, gen, target=20, seed=0)
    assert min(out.counts()) == 20 and out.counts()[0] == 20
    assert (out.provenance == "cfg@w=0.1").sum() == 20 - train.counts()[0] + max(0, 20 - train.counts()[1])
    rgb = ImageSet(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 1]), ["cat", "dog"])
    with pytest.raises(ConfigError, match="another dataset.*10 classes, not 2.*1 channels, not 3.*8x8 pixels, not 32x32.*Fix: Train a CFG model on this dataset"):
        build_generator("cfg", rgb, run_dir=run_dir)


def test_cancel_between_batches(trained):
    run_dir, _, _ = trained
    gen = CFGGenerator(run_dir, steps=2, batch_size=2)
    calls = []
    with pytest.raises(Cancelled):
        gen.generate(0, 6, progress=lambda d, n: calls.append(d), should_stop=lambda: len(calls) >= 1)
    assert calls == [2]


def test_bad_requests_get_clear_errors(trained, tmp_path):
    run_dir, _, _ = trained
    gen = CFGGenerator(run_dir, steps=2)
    with pytest.raises(ConfigError, match="Unknown class"):
        gen.generate(10, 1)
    with pytest.raises(ConfigError, match="positive"):
        gen.generate(0, 0)
    with pytest.raises(ConfigError, match="w=-1"):
        CFGGenerator(run_dir, w=-1)
    with pytest.raises(ConfigError, match="positive integer"):
        CFGGenerator(run_dir, steps=0)
    with pytest.raises(ConfigError, match="another dataset.*100 classes|10 classes, not 100"):
        CFGGenerator(run_dir, classes=[str(i) for i in range(100)])
    with pytest.raises(ConfigError, match="8x8 pixels, not 32x32"):
        CFGGenerator(run_dir, image_size=32)
    with pytest.raises(WeightsMissingError, match="does not exist"):  # missing weights: a lab error (CLI exit 3)
        CFGGenerator(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsMissingError, match="no 'latest' checkpoint.*Fix: Train"):
        CFGGenerator(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    w = broken / "checkpoints" / "latest" / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(ConfigError, match="corrupt"):
        CFGGenerator(broken)


def test_save_samples_writes_pngs_and_npz(trained, tmp_path):
    run_dir, _, _ = trained
    gen = CFGGenerator(run_dir, w=7.5, steps=2)
    imgs = gen.generate(1, 3, seed=9)
    seeds = [image_seed(9, 1, j) for j in range(3)]
    out = save_samples(imgs, tmp_path / "s", gen.describe(), seeds=seeds)
    pngs = sorted(p.name for p in (out / "001_1").glob("*.png"))
    assert pngs == [f"{j:05d}_seed{s}.png" for j, s in enumerate(seeds)]
    back, back_seeds = load_samples(out / "samples.npz")
    assert torch.equal(back.images, imgs.images) and back.labels.tolist() == [1, 1, 1]
    assert back_seeds.tolist() == seeds and list(back.provenance) == ["cfg@w=7.5"] * 3
    with np.load(out / "samples.npz", allow_pickle=False) as z:
        assert z["provenance"].dtype.kind == "U"


def test_resume_continues_the_same_loss_curve(tmp_path):
    straight = tmp_path / "straight"
    train_cfg(small_cfg(), straight)
    stopped = tmp_path / "stopped"
    state = {"step": 0}

    def on_progress(step, total, msg):
        state["step"] = step

    train_cfg(small_cfg(), stopped, Callbacks(on_progress=on_progress, should_stop=lambda: state["step"] >= 20))
    run = Run(stopped)
    assert run.status["state"] == "cancelled" and run.status["step"] == 20
    assert load_checkpoint(checkpoint_path(run.checkpoints, "latest"))[1]["step"] == 20
    with pytest.raises(ConfigError, match="--resume"):
        train_cfg(small_cfg(), stopped)  # never overwrites a run silently
    with pytest.raises(ConfigError, match="preset"):
        train_cfg(small_cfg(preset="small"), stopped, resume=True)
    train_cfg(small_cfg(), stopped, resume=True)
    a, b = Run(straight).metrics(), Run(stopped).metrics()
    assert list(b["step"]) == list(range(5, 41, 5))  # the resumed run carries on at step 25
    assert np.allclose(a["loss"].to_numpy(), b["loss"].to_numpy(), rtol=1e-4, atol=1e-6)
    assert Run(stopped).status["state"] == "done"
    wa, _, _ = load_checkpoint(checkpoint_path(Run(straight).checkpoints))
    wb, _, _ = load_checkpoint(checkpoint_path(Run(stopped).checkpoints))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4


def _sabotaged(monkeypatch, after: int, make):
    real = cfgmod.build_unet

    def build(*args, **kw):
        model = real(*args, **kw)
        forward, calls = model.forward, [0]

        def fwd(*a, **k):
            out = forward(*a, **k)
            if model.training:
                calls[0] += 1
                if calls[0] > after:
                    return make(out)
            return out

        model.forward = fwd
        return model

    monkeypatch.setattr(cfgmod, "build_unet", build)


def test_nan_loss_stops_with_clear_error_and_keeps_checkpoint(tmp_path, monkeypatch):
    def nan(out):
        out.sample = out.sample * float("nan")
        return out

    _sabotaged(monkeypatch, 12, nan)
    run_dir = tmp_path / "nan"
    with pytest.raises(TrainingError, match="step 13.*nan.*last good checkpoint.*Fix: Lower --lr"):
        train_cfg(small_cfg(checkpoint_every=10), run_dir)
    run = Run(run_dir)
    assert run.status["state"] == "failed" and "nan" in run.status["error"]
    weights, state, _ = load_checkpoint(checkpoint_path(run.checkpoints, "latest"))
    assert state["step"] == 10 and all(torch.isfinite(v).all() for v in weights.values())


def test_out_of_memory_names_the_fix(tmp_path, monkeypatch):
    def oom(out):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    _sabotaged(monkeypatch, 2, oom)
    with pytest.raises(TrainingError, match="(?i)out of memory.*lower --batch-size"):
        train_cfg(small_cfg(batch_size=64), tmp_path / "oom")
    assert Run(tmp_path / "oom").status["state"] == "failed"


def test_bad_config_is_refused(tmp_path):
    for kw, pat in [(dict(steps=0), "steps"), (dict(p_uncond=1.0), "p_uncond"), (dict(preset="xl"), "preset"),
                    (dict(beta_schedule="sigmoid"), "beta schedule"), (dict(preview_w=-1), "w=-1"), (dict(batch_size=0), "batch")]:
        with pytest.raises(ConfigError, match=pat):
            train_cfg(small_cfg(**kw), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_config_round_trips():
    cfg = small_cfg(uniform_classes=True, max_seconds=12.5)
    back = CFGTrainConfig.from_dict(cfg.to_dict())
    assert back == cfg and isinstance(back.data, DataConfig)


def test_uniform_classes_sampling_balances_batches():
    labels = torch.tensor([0] * 5 + [1] * 95)
    data = cfgmod._Batches(torch.zeros(100, 1, 4, 4, dtype=torch.uint8), labels, 2, True, False, "cpu")
    _, y = data.draw(4000, torch.Generator().manual_seed(0))
    assert 0.45 < (y == 0).float().mean() < 0.55
    data = cfgmod._Batches(torch.zeros(100, 1, 4, 4, dtype=torch.uint8), labels, 2, False, False, "cpu")
    _, y = data.draw(4000, torch.Generator().manual_seed(0))
    assert (y == 0).float().mean() < 0.1
