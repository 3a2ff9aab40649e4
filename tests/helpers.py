"""Small builders shared by tests."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_image(path: Path, size=(8, 8), mode="RGB", value: int | None = None, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(str(path))) % 2**32)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8) if value is None else np.full((size[1], size[0], channels), value, np.uint8)
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)
    img.save(path, format=fmt)
    return path


def make_folder(root: Path, classes=("cat", "dog", "emu"), per_class=6, size=(8, 8), mode="RGB", ext=".png") -> Path:
    for c in classes:
        for i in range(per_class):
            write_image(root / c / f"{i:03d}{ext}", size=size, mode=mode)
    return root


def cfg_run(root, name: str, state: str, step: int, total: int, checkpoint: bool = True, dataset: str = "digits", profile: str = "paper"):
    """A CFG run folder in ``state`` after ``step`` of ``total`` steps, with a 'latest' checkpoint unless told not.
    Trained on ``dataset`` with ``profile`` (the app's default page data: digits, paper)."""
    from core.store.checkpoint import save_checkpoint
    from core.store.runs import Run

    run = Run.create("cfg", {"data": {"dataset": dataset, "profile": profile}}, root=root, name=name)
    run.set_status(state, step=step, total=total)
    if checkpoint:
        save_checkpoint(run.checkpoints, "latest", {"w": torch.zeros(1)}, {"step": step}, {})
    time.sleep(1.01)  # run ids carry a one-second timestamp: keep the creation order visible
    return run


def tiny_cfg_checkpoint(run, classes: int = 10, channels: int = 1, image_size: int = 16, seed: int = 0):
    """A real (untrained, seeded) tiny-preset CFG checkpoint in ``run``'s checkpoints/latest, in the
    format core.generators.cfg.load_model reads: enough to sample from in a test."""
    from core.store.checkpoint import save_checkpoint
    from core.nets.unet import build_unet

    torch.manual_seed(seed)
    model = build_unet("tiny", classes, channels, image_size)
    config = {"kind": "cfg", "model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items() if not k.startswith("_")},
              "classes": [str(i) for i in range(classes)], "channels": channels, "image_size": image_size, "null_label": classes,
              "train_counts": [10] * classes, "beta_schedule": "linear"}
    save_checkpoint(run.checkpoints, "latest", {f"model.{k}": v for k, v in model.state_dict().items()}, {"step": 1}, config)
    return run
