"""`python -m core export`: a CFG run as a diffusers folder that reproduces the lab's samples."""

import json
import re
from pathlib import Path

import pytest
import torch

from core.cli import main
from tests.helpers import cfg_run

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["zero", "one", "two", "three"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny CFG run (4 classes, 1x16x16) whose EMA weights differ from its model weights."""
    from diffusers.training_utils import EMAModel

    from core.checkpoint import save_checkpoint
    from core.nets.unet import build_unet
    from core.train.cfg import CFGTrainConfig, _ckpt_config, _ckpt_weights

    torch.manual_seed(0)
    model = build_unet("tiny", len(CLASSES), 1, 16)
    ema = EMAModel(model.parameters())
    g = torch.Generator().manual_seed(1)
    for p in ema.shadow_params:
        p.data += 0.05 * torch.randn(p.shape, generator=g)
    run = cfg_run(tmp_path_factory.mktemp("runs"), "export", "done", 7, 7, checkpoint=False)
    ckpt_cfg = _ckpt_config(CFGTrainConfig(), model, CLASSES, 1, 16, [4, 3, 2, 1])
    save_checkpoint(run.checkpoints, "latest", _ckpt_weights(model, ema), {"step": 7}, ckpt_cfg)
    return run.path, model, ema


def _snippet() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- export-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README lost its export snippet"
    return m.group(1)


def test_readme_snippet_is_at_most_ten_lines():
    assert len(_snippet().strip().splitlines()) <= 10


def test_exported_unet_loads_in_diffusers_with_the_ema_weights(trained, tmp_path):
    from diffusers import DPMSolverMultistepScheduler, UNet2DModel

    run_dir, model, ema = trained
    out = tmp_path / "export"
    assert main(["export", "--run", str(run_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "scheduler", "unet"]
    unet = UNet2DModel.from_pretrained(out / "unet")
    assert unet.config.num_class_embeds == 5  # C + 1: the last row is the null label
    names = [n for n, _ in model.named_parameters()]
    got = dict(unet.named_parameters())
    assert all(torch.equal(got[n], p) for n, p in zip(names, ema.shadow_params))  # EMA, not the raw model
    assert not torch.equal(got[names[0]], dict(model.named_parameters())[names[0]])
    meta = json.loads((out / "classes.json").read_text())
    assert meta["classes"] == CLASSES and meta["null_label"] == 4 and meta["trained_steps"] == 7 and meta["weights"] == "EMA"
    sched = DPMSolverMultistepScheduler.from_pretrained(out / "scheduler")
    assert sched.config.thresholding is True and sched.config.num_train_timesteps == 1000 and sched.config.beta_schedule == "linear"


def test_readme_snippet_reproduces_the_labs_samples(trained, tmp_path):
    from core.diffusion.samplers import model_eps_fn, sample, to_uint8
    from core.generators.cfg import CFGGenerator

    run_dir, _, _ = trained
    out = tmp_path / "export"
    assert main(["export", "--run", str(run_dir), "--out", str(out)]) == 0
    ns: dict = {}
    exec(_snippet().replace("export/cfg-digits", str(out)), ns)  # class 3, w = 7.5, seeds 0..3, DPM-Solver++ 25 steps

    gen = CFGGenerator(run_dir, w=7.5, sampler="dpm", steps=25, device="cpu")
    labels, seeds = torch.full((4,), 3), [0, 1, 2, 3]
    lab = sample(model_eps_fn(gen.model, "cpu"), labels, seeds, (1, 16, 16), gen.null_label, w=7.5, sampler="dpm", steps=25)
    assert ns["x"].shape == lab.shape == (4, 1, 16, 16)
    assert (ns["x"] - lab).abs().max().item() <= 1e-5
    assert torch.equal(to_uint8(ns["x"]), gen.sample_batch(labels, seeds))
    assert lab.std() > 0.05  # not a degenerate all-equal output


def test_export_refuses_a_full_folder_and_a_non_cfg_run(trained, tmp_path, capsys):
    run_dir, _, _ = trained
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", "--run", str(run_dir), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
    assert main(["export", "--run", str(run_dir), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "unet" / "config.json").exists()
    assert main(["export", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 3  # no weights: a lab error
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "x").exists()
