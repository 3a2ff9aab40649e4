"""Writing images to disk."""

from __future__ import annotations

from pathlib import Path

import torch

from core.store.atomic import atomic_write


def save_png(image: torch.Tensor, path: Path, upscale: int = 1) -> Path:
    """Atomically write a uint8 (C, H, W) tensor as a PNG (nearest-neighbour ``upscale``)."""
    from PIL import Image

    arr = image.permute(1, 2, 0).cpu().numpy()
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
