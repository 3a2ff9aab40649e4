"""Read ``ROOT/<class>/*`` image folders into uint8 tensors.

torchvision's ``ImageFolder`` gives one PIL image per ``__getitem__``; we need the whole
split decoded once into one tensor (then cached), with unreadable files *skipped and
reported* rather than crashing a 60,000-image load, and with mixed modes and sizes
normalised. So the walk is ours, but class discovery follows ``ImageFolder``'s rules
(sorted sub-folder names) so class indices match torchvision's.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from core.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def find_classes(root: Path) -> list[str]:
    if not root.is_dir():
        raise DataError(f"Folder not found: {root}.", "Check the path; it must contain one sub-folder per class.")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(
            f"{root} has no class sub-folders.",
            "Lay the images out as ROOT/<class>/*.png (or ROOT/train/<class>/ and ROOT/test/<class>/).",
        )
    return classes


def list_files(root: Path, classes: list[str]) -> tuple[list[Path], list[int], list[tuple[str, str]]]:
    """All files per class (sorted), and the non-image files skipped with a reason."""
    files, labels, skipped = [], [], []
    for idx, name in enumerate(classes):
        entries = sorted(p for p in (root / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS]
        skipped += [(str(p), "not an image file (extension)") for p in entries if p.suffix.lower() not in IMAGE_EXTENSIONS]
        if not images:
            raise DataError(
                f"Class '{name}' in {root} has no images.",
                f"Add PNG/JPEG/BMP/WebP files to {root / name}, or remove the empty folder.",
            )
        files += images
        labels += [idx] * len(images)
    return files, labels, skipped


# An image whose header claims more pixels than this is skipped, not decoded: a tiny PNG can
# declare 50,000 x 50,000 pixels and take gigabytes to decode (a decompression bomb). PIL's own
# guard (Image.MAX_IMAGE_PIXELS) only warns below twice its limit; this one is explicit.
MAX_PIXELS = 64_000_000


class PixelBomb(ValueError):
    pass


def _open(path: Path, max_pixels: int | None = None) -> Image.Image:
    img = Image.open(path)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if img.size[0] * img.size[1] > limit:
        img.close()
        raise PixelBomb(f"{img.size[0]}x{img.size[1]} pixels is over the limit of {limit:,} (a decompression bomb?)")
    img.load()  # decode now so truncated files fail here, inside the try
    return img


def probe_sizes(files: list[Path], limit: int = 2000) -> tuple[int, int]:
    """Most common (width, height) among the first ``limit`` readable headers."""
    sizes: Counter = Counter()
    for p in files[:limit]:
        try:
            with Image.open(p) as img:
                sizes[img.size] += 1
        except Exception:
            continue
    if not sizes:
        raise DataError("None of the files could be read as images.", "Check that the folder holds PNG/JPEG/BMP/WebP files.")
    return sizes.most_common(1)[0][0]


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    if img.mode in ("RGBA", "LA", "P") and mode == "RGB":
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert(mode)


def decode_files(
    files: list[Path],
    labels: list[int],
    size: tuple[int, int],
    mode: str,
    workers: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]], list[int]]:
    """Decode, convert and resize; returns images, labels, skipped, kept indices."""
    w, h = size

    def load(i: int):
        try:
            img = _to_mode(_open(files[i]), mode)
        except PixelBomb as exc:
            return i, None, f"too large: {exc}"
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            return i, None, f"unreadable image: {type(exc).__name__}: {exc}"
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BICUBIC, reducing_gap=None)
        arr = np.asarray(img, dtype=np.uint8)
        return i, arr.reshape(h, w, -1), None

    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    arrays, keep, skipped = [], [], []
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        for i, arr, err in pool.map(load, range(len(files)), chunksize=64):
            if err:
                skipped.append((str(files[i]), err))
            else:
                arrays.append(arr)
                keep.append(i)
    if not arrays:
        return torch.empty(0, 3 if mode == "RGB" else 1, h, w, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), skipped, keep
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor([labels[i] for i in keep], dtype=torch.int64), skipped, keep


def detect_mode(files: list[Path], limit: int = 200) -> str:
    """'L' if every probed image is grayscale, else 'RGB'."""
    for p in files[:: max(1, len(files) // limit)]:
        try:
            with Image.open(p) as img:
                if img.mode not in ("L", "1", "I;16", "I", "LA"):
                    return "RGB"
        except Exception:
            continue
    return "L"


def read_split(
    root: Path, classes: list[str], size: tuple[int, int] | None, mode: str | None
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]], tuple[int, int], str]:
    files, labels, skipped = list_files(root, classes)
    size = size or probe_sizes(files)
    mode = mode or detect_mode(files)
    images, labels_t, bad, _ = decode_files(files, labels, size, mode)
    skipped += bad
    counts = torch.bincount(labels_t, minlength=len(classes)).tolist()
    unreadable = [classes[c] for c, n in enumerate(counts) if n == 0]
    if unreadable:
        raise DataError(
            f"Every image of class {', '.join(repr(u) for u in unreadable)} in {root} is unreadable "
            f"({len(bad)} bad files in total, e.g. {bad[0][0]}: {bad[0][1]}).",
            "Replace the corrupt files or remove the class folder.",
        )
    return images, labels_t, skipped, size, mode
