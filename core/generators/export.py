"""Export a trained CFG generator as a plain diffusers folder, usable without the lab.

    OUT/unet/        the EMA UNet2DModel (``save_pretrained``: config.json + safetensors)
    OUT/scheduler/   the lab's default sampler, DPM-Solver++(2M) with dynamic thresholding
                     (``DPMSolverMultistepScheduler.from_pretrained``); its betas are the training schedule
    OUT/classes.json the class names, the null label and the guidance convention
    OUT/pipeline.py  the pipeline class (core/diffusion/cfg_pipeline.py, which needs no lab)
    OUT/model_index.json  so ``DiffusionPipeline.from_pretrained(OUT, custom_pipeline="pipeline",
                     trust_remote_code=True)`` builds that pipeline from unet/ and scheduler/
    OUT/README.md    the model card: data, profile, steps, the w convention, gate figures if known

The lab's own checkpoint mixes ``model.`` and ``ema.`` keys with the optimizer state, which
``UNet2DModel.from_pretrained`` cannot read; this writes the EMA weights (the ones the lab
samples with) on their own. The UNet has C + 1 class embeddings: rows 0..C-1 are the classes,
row C the *null* label of the unconditional branch, and guidance is the paper's
ε̃ = (1 + w)·ε(x, c) − w·ε(x, C) (diffusers' ``guidance_scale`` = 1 + w).
"""

from __future__ import annotations

import os
import shutil
from importlib.resources import files
from pathlib import Path

from core.store.atomic import atomic_write_bytes, atomic_write_json, swap_folder
from core.diffusion.samplers import DEFAULT_STEPS, make_scheduler
from core.errors import ConfigError
from core.generators.cfg import find_checkpoint, load_model
from core.generators.model_card import model_card

CLASSES_FILE = "classes.json"
PIPELINE_FILE = "pipeline.py"  # custom_pipeline="pipeline"
PIPELINE_CLASS = "ImbalanceLabCFGPipeline"


def export_generator(run_dir: str | os.PathLike, out_dir: str | os.PathLike, checkpoint: str = "latest", overwrite: bool = False) -> Path:
    """Write the run's EMA UNet, scheduler and class names to ``out_dir``; returns it.

    The folder is built beside ``out_dir`` and renamed into place, so a failed export
    leaves nothing half-written; an existing non-empty ``out_dir`` is refused unless
    ``overwrite``."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConfigError(f"{out} already exists and is not empty.", "Choose a new --out folder, or pass --overwrite to replace it.")
    path = find_checkpoint(run_dir, checkpoint)
    model, config, state = load_model(run_dir, checkpoint, "cpu", ema=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = out.parent / f".{out.name}.export-tmp", out.parent / f".{out.name}.export-old"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp / "unet", safe_serialization=True)
        make_scheduler("dpm", DEFAULT_STEPS["dpm"], config.get("beta_schedule", "linear")).save_pretrained(tmp / "scheduler")
        atomic_write_json(tmp / CLASSES_FILE, {
            "classes": list(config["classes"]),
            "null_label": int(config["null_label"]),
            "num_class_embeds": int(model.config.num_class_embeds),
            "guidance": "eps = (1 + w) * eps(x, c) - w * eps(x, null_label); w = 0 is plain conditional; diffusers guidance_scale = 1 + w",
            "channels": int(config["channels"]),
            "image_size": int(config["image_size"]),
            "pixel_range": "[-1, 1]; uint8 = round((x.clamp(-1, 1) + 1) * 127.5)",
            "beta_schedule": config.get("beta_schedule", "linear"),
            "train_counts": config.get("train_counts"),
            "trained_steps": int(state.get("step", 0)),
            "weights": "EMA",
            "source": str(path),
        })
        import diffusers

        atomic_write_bytes(tmp / PIPELINE_FILE, (files("core.diffusion") / "cfg_pipeline.py").read_bytes())
        atomic_write_json(tmp / "model_index.json", {
            "_class_name": [PIPELINE_FILE[:-3], PIPELINE_CLASS],  # diffusers: [module file in this folder, class]
            "_diffusers_version": diffusers.__version__,
            "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
            "unet": ["diffusers", "UNet2DModel"],
        })
        card = model_card(path.parent.parent, config, state, PIPELINE_CLASS, DEFAULT_STEPS["dpm"])
        atomic_write_bytes(tmp / "README.md", card.encode())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return swap_folder(tmp, out, old)
