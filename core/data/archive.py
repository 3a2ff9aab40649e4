"""Safe extraction of an uploaded dataset zip: no escaping paths, links or zip bombs.

``zipfile.extractall`` already strips ``..`` and absolute prefixes, silently writing the
file somewhere else; for a dataset that hides a malicious or broken archive, so we check
every entry ourselves and *reject* the archive instead (zip-slip, CWE-22).

A zip bomb (entries that expand to gigabytes, CWE-409) is refused before anything is
written when the central directory admits it: total declared size over ``max_bytes``, an
entry whose compression ratio passes ``max_ratio``, or more than ``max_entries`` entries.
The declared sizes can lie, so extraction also counts the bytes it actually writes and
stops at the same limit, leaving nothing behind. The limits are parameters (tests use
kilobyte bombs); the defaults are the app's stated limits below.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from core.errors import DataError

FIX = "Re-create the zip from the dataset folder itself (e.g. `cd ROOT && zip -r ../data.zip .`)."
SUPPORTED = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)  # what Python's zipfile reads
CHUNK = 1 << 20  # bytes read per step while extracting (the running count is checked after each)


@dataclass(frozen=True)
class ZipLimits:
    """What an archive may hold. Defaults: 8 GB uncompressed (CIFAR-10 as PNGs is ~0.2 GB),
    a compression ratio of 200 per entry (images barely compress; a bomb compresses ~1000:1),
    and 500,000 entries (ImageNet-sized folders have ~1.3 M; split them)."""

    max_bytes: int = 8 * 1024**3
    max_ratio: float = 200.0
    max_entries: int = 500_000
    ratio_floor: int = 64 * 1024  # entries smaller than this are never refused for their ratio


DEFAULT_LIMITS = ZipLimits()
# The largest zip the app accepts as an upload, in MB: .streamlit/config.toml's server.maxUploadSize
# must equal it (tests/test_serving.py checks). Images barely compress, so a 1 GB zip unpacks to a
# little over 1 GB, well inside max_bytes; a larger dataset is pointed at as a folder under the data roots.
MAX_UPLOAD_MB = 1024


def _gb(n: int) -> str:
    return f"{n / 1024**3:.2f} GB" if n >= 1024**3 else f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{n:,} bytes"


def _check_entries(zf: zipfile.ZipFile, dest: Path, label: str, limits: ZipLimits = DEFAULT_LIMITS) -> None:
    dest = dest.resolve()
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise DataError(f"{label} holds {len(infos):,} entries, more than the limit of {limits.max_entries:,}; nothing was extracted.",
                        "Split the dataset into smaller zips, or point the lab at the folder instead of a zip.")
    total = 0
    for info in infos:
        name = info.filename
        posix = name.replace("\\", "/")  # a backslash separates folders on Windows: "..\\x" escapes there
        target = (dest / posix).resolve()
        if posix.startswith("/") or ":" in posix.split("/")[0] or not target.is_relative_to(dest):
            raise DataError(f"Zip entry '{name}' in {label} points outside the extraction folder; the archive was rejected and nothing was extracted.", FIX)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise DataError(f"Zip entry '{name}' in {label} is a symbolic link; links are not accepted.", "Zip real files only.")
        if info.flag_bits & 0x1:
            raise DataError(f"Zip entry '{name}' in {label} is encrypted; nothing was extracted.", "Zip the images without a password.")
        if info.compress_type not in SUPPORTED:
            raise DataError(f"Zip entry '{name}' in {label} uses compression method {info.compress_type}, which the lab cannot read; "
                            "nothing was extracted.", "Re-create the zip with the usual (deflate) compression, e.g. `zip -r`.")
        total += info.file_size
        if info.file_size >= limits.ratio_floor and info.file_size > limits.max_ratio * max(1, info.compress_size):
            raise DataError(f"Zip entry '{name}' in {label} expands {info.file_size / max(1, info.compress_size):,.0f}-fold "
                            f"(limit {limits.max_ratio:g}); that is a zip bomb, not images. Nothing was extracted.", FIX)
    if total > limits.max_bytes:
        raise DataError(f"{label} would expand to {_gb(total)}, more than the limit of {_gb(limits.max_bytes)}; nothing was extracted.",
                        "Use a smaller dataset, or point the lab at the unpacked folder instead of a zip.")


def _extract_counted(zf: zipfile.ZipFile, tmp: Path, label: str, limits: ZipLimits) -> None:
    """Extract entry by entry, counting the bytes really written (headers can lie)."""
    written = 0
    for info in zf.infolist():
        target = tmp / info.filename
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                if written > limits.max_bytes:
                    raise DataError(f"{label} expanded past the limit of {_gb(limits.max_bytes)} while extracting (its headers understate "
                                    "the sizes); extraction stopped and the partial files were removed.", FIX)
                out.write(chunk)


def extract_zip(zip_path: str | Path, cache_root: Path, limits: ZipLimits | None = None, display_name: str | None = None) -> Path:
    """Extract once into ``cache_root/zips/<sha1>``; return the dataset root inside it.

    ``display_name`` is what errors call the archive (the user's own file name for an upload).
    """
    zip_path = Path(zip_path)
    limits = limits or DEFAULT_LIMITS
    label = display_name or zip_path.name
    if not zip_path.is_file():
        raise DataError(f"Zip file not found: {zip_path}.", "Check the path.")
    digest = hashlib.sha1(zip_path.read_bytes()).hexdigest()[:16]
    dest = cache_root / "zips" / digest
    done = dest / ".extracted"
    if not done.exists():
        tmp = dest.with_name(dest.name + ".partial")
        try:
            with zipfile.ZipFile(zip_path) as zf:
                _check_entries(zf, dest, label, limits)
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)  # an archive with no files still gives a (empty) folder, which loading then refuses
                _extract_counted(zf, tmp, label, limits)
        except zipfile.BadZipFile as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"{label} is not a valid zip file ({exc}).", "Upload the archive again, or re-create it with `zip -r`.") from exc
        except (OSError, EOFError, RuntimeError, NotImplementedError, ValueError, zlib.error) as exc:
            # a corrupt entry (bad data, a name too long for the disk, a file and a folder of one name): the
            # archive is refused as a whole, with what went wrong, and nothing of it stays
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"{label} could not be extracted ({type(exc).__name__}: {str(exc)[:200]}); nothing of it was kept.", FIX) from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        done.touch()
    return dataset_root(dest)


def dataset_root(folder: Path) -> Path:
    """Descend through single wrapping folders (``data.zip`` -> ``data/train/...``)."""
    while True:
        entries = [e for e in folder.iterdir() if not e.name.startswith(".") and e.name != "__MACOSX"]
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in ("train", "test"):
            folder = entries[0]
            continue
        return folder
