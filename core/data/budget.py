"""How much memory loading a dataset takes, worked out before anything is allocated.

The app refuses a dataset whose estimate passes ``IMBALANCE_LAB_MEMORY_BUDGET_GB`` (default
8 GB): ``?dataset=cifar10&size=1024`` would otherwise ask for ~880 GB. The estimate is the
peak of the loader's own steps (core/data/loading.py), counted in bytes:

* torchvision sets and digits resize the whole split at once through float32
  (``_resize``): the uint8 source, its float32 copy, the float32 output and the uint8 result,
  n·c·(native²·(1 + 4) + size²·(4 + 1)); without a resize, the array and its channel-first
  copy, 2·n·c·native².
* image folders resize file by file with PIL, then stack and copy to channel-first:
  3·n·c·size² (the decoded list, the stack and the contiguous copy), with c = 3 (a grayscale
  folder is counted as RGB: the estimate errs high).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from core.errors import ConfigError, DataError

BUDGET_VAR = "IMBALANCE_LAB_MEMORY_BUDGET_GB"
DEFAULT_BUDGET_GB = 8.0
GB = 1024**3
# dataset -> (images in train + test, channels, native size); digits is upscaled to 16 by default
KNOWN = {"digits": (1797, 1, 8), "cifar10": (60_000, 3, 32), "cifar100": (60_000, 3, 32),
         "mnist": (70_000, 1, 28), "fashion-mnist": (70_000, 1, 28)}
DEFAULT_SIZE = {"digits": 16}
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class Estimate:
    images: int
    channels: int
    native: int
    size: int
    bytes: int
    how: str  # "whole-split float32 resize" | "no resize" | "file-by-file resize"

    def text(self) -> str:
        return (f"{self.images:,} images × {self.channels} channel(s) at {self.size}×{self.size} px "
                f"(from {self.native}×{self.native}, {self.how}): about {self.bytes / GB:.2f} GB")


def gb_setting(env: Mapping[str, str], var: str, default_gb: float) -> int:
    """Bytes from an environment variable giving GB (``default_gb`` when unset); a ConfigError names a bad value."""
    raw = (env.get(var) or "").strip()
    if not raw:
        return int(default_gb * GB)
    try:
        gb = float(raw)
    except ValueError:
        gb = -1.0
    if not gb > 0:
        raise ConfigError(f"{var}={raw!r} is not a positive number of GB.", f"Set it to e.g. {default_gb:g}, or unset it.")
    return int(gb * GB)


def budget_bytes(env: Mapping[str, str] | None = None) -> int:
    return gb_setting(os.environ if env is None else env, BUDGET_VAR, DEFAULT_BUDGET_GB)


def array_bytes(images: int, channels: int, native: int, size: int, per_file: bool) -> tuple[int, str]:
    """(peak bytes, how) of decoding ``images`` images of ``native`` px into ``size`` px (see the module doc)."""
    n = images * channels
    if per_file:
        return 3 * n * size * size, "file-by-file resize"
    if size == native:
        return 2 * n * native * native, "no resize"
    return n * (native * native * 5 + size * size * 5), "whole-split float32 resize"


def _folder_stats(root: Path) -> tuple[int, int]:
    """(image files under root, side of the first image), reading one image header only."""
    from PIL import Image

    count, first = 0, None
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.lower().endswith(IMAGE_EXT):
                count += 1
                if first is None:
                    first = Path(dirpath) / f
    native = 32
    if first is not None:
        try:
            with Image.open(first) as im:
                native = max(im.size)
        except OSError:
            pass
    return count, native


def estimate(dataset: str, data_dir: str | None, image_size: int | None) -> Estimate | None:
    """The loading peak for a DataConfig's dataset fields; None when it cannot be told without
    reading the data (a zip not yet extracted: the archive limits bound it instead)."""
    folder = Path(data_dir).expanduser() if data_dir else None
    if folder is not None and folder.suffix.lower() == ".zip":
        return None
    if dataset == "imagefolder" or (folder is not None and (folder / "train").is_dir()):
        if folder is None or not folder.is_dir():
            return None
        count, native = _folder_stats(folder)
        size = image_size or native
        b, how = array_bytes(count, 3, native, size, per_file=True)
        return Estimate(count, 3, native, size, b, how)
    if dataset not in KNOWN:
        return None
    count, channels, native = KNOWN[dataset]
    size = image_size or DEFAULT_SIZE.get(dataset, native)
    b, how = array_bytes(count, channels, native, size, per_file=False)
    return Estimate(count, channels, native, size, b, how)


def check_budget(dataset: str, data_dir: str | None, image_size: int | None, env: Mapping[str, str] | None = None) -> Estimate | None:
    """Raise a DataError giving the estimate when loading would pass the budget; else the estimate."""
    return refuse_over_budget(estimate(dataset, data_dir, image_size), dataset, env)


def refuse_over_budget(est: Estimate | None, dataset: str, env: Mapping[str, str] | None = None) -> Estimate | None:
    """``check_budget`` for an estimate already made (the app caches estimates of folders)."""
    limit = budget_bytes(env)
    if est is not None and est.bytes > limit:
        raise DataError(f"Loading {dataset} would need {est.text()}, more than this server's memory budget of {limit / GB:.2f} GB; "
                        "nothing was loaded.",
                        f"Pick a smaller image size (or the native size); the person running the server can raise {BUDGET_VAR}.")
    return est
