"""`python -m core export`: a CFG run as a diffusers folder that reproduces the lab's samples."""

import json
import re
import shutil
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

    from core.store.checkpoint import save_checkpoint
    from core.nets.unet import build_unet
    from core.train.cfg_unet import CFGTrainConfig, _ckpt_config, _ckpt_weights

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
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "classes.json", "model_index.json", "pipeline.py", "scheduler", "unet"]
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
    assert len(ns["images"]) == 3 and ns["images"][0].size == (16, 16)

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


def _load_pipeline(out):
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(out, custom_pipeline="pipeline", trust_remote_code=True, local_files_only=True)


@pytest.mark.parametrize("w", [0.0, 0.1, 7.5])
def test_pipeline_from_pretrained_reproduces_the_labs_samples(trained, tmp_path, w):
    """DiffusionPipeline.from_pretrained(OUT, custom_pipeline=...) samples with class_labels and the
    paper's w; fixed seeds give the lab's own samples (w = 0: the conditional pass alone)."""
    from core.diffusion.samplers import model_eps_fn, sample, to_uint8
    from core.generators.cfg import CFGGenerator

    run_dir, _, _ = trained
    out = tmp_path / "export"
    assert main(["export", "--run", str(run_dir), "--out", str(out)]) == 0
    pipe = _load_pipeline(out)
    assert type(pipe).__name__ == "ImbalanceLabCFGPipeline" and pipe.null_label == 4
    labels, seeds = [0, 1, 2, 3, 3], [10, 11, 12, 13, 14]
    got = pipe(class_labels=labels, w=w, seeds=seeds, num_inference_steps=12, output_type="raw").images
    gen = CFGGenerator(run_dir, w=w, sampler="dpm", steps=12, device="cpu")
    lab = sample(model_eps_fn(gen.model, "cpu"), torch.tensor(labels), seeds, (1, 16, 16), gen.null_label, w=w, sampler="dpm", steps=12)
    assert got.shape == lab.shape == (5, 1, 16, 16)
    assert (got - lab).abs().max().item() <= 1e-5
    assert lab.std() > 0.05
    pil = pipe(class_labels=labels, w=w, seeds=seeds, num_inference_steps=12).images  # the default output: PIL images
    lab8 = gen.sample_batch(torch.tensor(labels), seeds)
    assert torch.equal(to_uint8(lab), lab8)
    as_uint8 = torch.stack([torch.from_numpy(__import__("numpy").array(im)) for im in pil]).reshape(lab8.shape)
    assert (as_uint8.int() - lab8.int()).abs().max().item() <= 1  # 255·(x+1)/2 vs 127.5·(x+1), rounded: at most one level apart
    by_scale = pipe(class_labels=labels, guidance_scale=1 + w, seeds=seeds, num_inference_steps=12, output_type="raw").images
    assert (by_scale - got).abs().max().item() <= 1e-6  # diffusers' guidance_scale = 1 + w


def test_pipeline_refuses_bad_labels_w_and_seeds(trained, tmp_path):
    run_dir, _, _ = trained
    out = tmp_path / "export"
    assert main(["export", "--run", str(run_dir), "--out", str(out)]) == 0
    pipe = _load_pipeline(out)
    with pytest.raises(ValueError, match=r"class_labels must be in 0\.\.3 \(label 4 is the unconditional one\)"):
        pipe(class_labels=[4], seeds=[0])
    with pytest.raises(ValueError, match="w=-1.0 must be a finite number >= 0"):
        pipe(class_labels=[0], w=-1, seeds=[0])
    with pytest.raises(ValueError, match="not both"):
        pipe(class_labels=[0], w=1, guidance_scale=2, seeds=[0])
    with pytest.raises(ValueError, match="2 seeds for 1 class labels"):
        pipe(class_labels=[0], seeds=[0, 1])


def test_model_index_and_model_card(trained, tmp_path):
    run_dir, _, _ = trained
    out = tmp_path / "export"
    assert main(["export", "--run", str(run_dir), "--out", str(out)]) == 0
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "ImbalanceLabCFGPipeline"]
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == ["diffusers", "DPMSolverMultistepScheduler"]
    assert "from core" not in (out / "pipeline.py").read_text() and "import core" not in (out / "pipeline.py").read_text()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: diffusers\n")
    assert "dataset: `digits`; imbalance profile: `paper`" in card
    assert "| 0 | zero | 4 |" in card and "| 3 | three | 1 |" in card  # the class names and their training counts
    assert "- steps trained: 7" in card and "**w = 0 is plain conditional sampling**" in card and "`guidance_scale` is 1 + w" in card
    assert "Not measured: this run was not part of a study." in card


def test_model_card_shows_the_studys_gate_figures(trained, tmp_path):
    """A CFG model trained inside a study (<study>/cfg/seed0): its card carries the study's gate rows."""
    from core.store.atomic import atomic_write_json

    run_dir, _, _ = trained
    study = tmp_path / "study"
    shutil.copytree(run_dir, study / "cfg" / "seed0")
    gate = {"passed": False, "tail_consistency": 0.625, "precision": 0.5, "near_copy_rate": 0.125}
    atomic_write_json(study / "results.json", {"rows": [
        {"method": "cfg@w=7.5", "fill": "cfg", "classifier": "small", "gate": gate},
        {"method": "oversample", "fill": "oversample", "classifier": "small"}]})
    out = tmp_path / "export"
    assert main(["export", "--run", str(study / "cfg" / "seed0"), "--out", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "| cfg@w=7.5 / small | False | 0.625 | 0.500 | 0.125 |" in card and "oversample" not in card
