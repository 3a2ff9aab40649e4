"""Small builders shared by tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
