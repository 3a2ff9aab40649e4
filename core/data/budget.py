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
import zipfile
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
PIXELS_VAR = "IMBALANCE_LAB_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 4096 * 4096
DECODE_THREADS = 8  # core.data.imagefolder.decode_files decodes this many images at once (at most)


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


def max_pixels(env: Mapping[str, str] | None = None) -> int:
    """The per-image cap: an image whose header declares more pixels refuses its dataset."""
    env = os.environ if env is None else env
    raw = (env.get(PIXELS_VAR) or "").strip()
    try:
        n = int(raw) if raw else DEFAULT_MAX_PIXELS
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{PIXELS_VAR}={raw!r} is not a positive whole number of pixels.", f"Set it to e.g. {DEFAULT_MAX_PIXELS}, or unset it.")
    return n


@dataclass(frozen=True)
class Headers:
    count: int  # image files
    native: int  # the largest side any header declares
    largest: int  # the most pixels any header declares


def _scan(items, label: str, cap: int) -> Headers:
    """Every image header of ``items`` ((name, open-a-binary-file) pairs): a DataError on the first past ``cap``."""
    from PIL import Image, UnidentifiedImageError

    count, native, largest = 0, 0, 0
    for name, opener in items:
        count += 1
        try:
            with opener() as f, Image.open(f) as im:
                w, h = im.size
        except Image.DecompressionBombError as exc:  # past Pillow's own cap, which is above ours: the cap is the bound, not a skip
            raise DataError(f"{name} in {label} declares more pixels than Pillow opens ({exc}), far more than this server's per-image "
                            f"cap of {cap:,} ({PIXELS_VAR}); nothing was loaded.",
                            "Remove or shrink that image (a small file that decodes to that many pixels is a decompression bomb).") from None
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError):
            continue  # the loader skips it (and says so); an unreadable zip entry: extraction refuses the archive
        if w * h > cap:
            raise DataError(f"{name} in {label} declares {w:,}×{h:,} = {w * h:,} pixels, more than this server's per-image cap of "
                            f"{cap:,} ({PIXELS_VAR}); nothing was loaded.",
                            "Remove or shrink that image (a small file that decodes to that many pixels is a decompression bomb); "
                            f"the person running the server can raise {PIXELS_VAR}.")
        native, largest = max(native, w, h), max(largest, w * h)
    return Headers(count, native or 32, largest)


def _folder_stats(root: Path, cap: int) -> Headers:
    """Every image header under ``root`` (not only the first: one small file can hide tens of megapixels behind it)."""
    def items():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if f.lower().endswith(IMAGE_EXT):
                    path = Path(dirpath) / f
                    yield str(path.relative_to(root)), (lambda p=path: open(p, "rb"))
    return _scan(items(), str(root), cap)


def _zip_stats(path: Path, cap: int) -> Headers | None:
    """Every image header inside a zip, read from the archive without extracting it (None: not a readable zip)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return None  # extraction refuses it with its own message
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(IMAGE_EXT)
                 and "__MACOSX" not in i.filename]
        return _scan(((i.filename, lambda i=i: zf.open(i)) for i in infos), path.name, cap)


def estimate(dataset: str, data_dir: str | None, image_size: int | None, env: Mapping[str, str] | None = None) -> Estimate | None:
    """The loading peak for a DataConfig's dataset fields; None when it cannot be told (no folder).

    Folders and zips: every image header is read (a zip's from inside the archive), each held
    to the per-image cap ``IMBALANCE_LAB_MAX_IMAGE_PIXELS``; the decoding threads' own buffers
    (``DECODE_THREADS`` images of the largest, RGBA, before and after the resize) are added."""
    folder = Path(data_dir).expanduser() if data_dir else None
    cap = max_pixels(env)
    stats = None
    if folder is not None and folder.suffix.lower() == ".zip":
        stats = _zip_stats(folder, cap) if folder.is_file() else None
        if stats is None:
            return None
    elif dataset == "imagefolder" or (folder is not None and (folder / "train").is_dir()):
        if folder is None or not folder.is_dir():
            return None
        stats = _folder_stats(folder, cap)
    if stats is not None:
        size = image_size or stats.native
        b, how = array_bytes(stats.count, 3, stats.native, size, per_file=True)
        b += DECODE_THREADS * stats.largest * 4 * 2
        return Estimate(stats.count, 3, stats.native, size, b, how)
    if dataset not in KNOWN:
        return None
    count, channels, native = KNOWN[dataset]
    size = image_size or DEFAULT_SIZE.get(dataset, native)
    b, how = array_bytes(count, channels, native, size, per_file=False)
    return Estimate(count, channels, native, size, b, how)


def check_budget(dataset: str, data_dir: str | None, image_size: int | None, env: Mapping[str, str] | None = None) -> Estimate | None:
    """Raise a DataError giving the estimate when loading would pass the budget; else the estimate."""
    return refuse_over_budget(estimate(dataset, data_dir, image_size, env), dataset, env)


def refuse_over_budget(est: Estimate | None, dataset: str, env: Mapping[str, str] | None = None) -> Estimate | None:
    """``check_budget`` for an estimate already made (the app caches estimates of folders)."""
    limit = budget_bytes(env)
    if est is not None and est.bytes > limit:
        raise DataError(f"Loading {dataset} would need {est.text()}, more than this server's memory budget of {limit / GB:.2f} GB; "
                        "nothing was loaded.",
                        f"Pick a smaller image size (or the native size); the person running the server can raise {BUDGET_VAR}.")
    return est
