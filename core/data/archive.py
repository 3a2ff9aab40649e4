"""Safe extraction of an uploaded dataset zip.

``zipfile.extractall`` already strips ``..`` and absolute prefixes, silently writing the
file somewhere else; for a dataset that hides a malicious or broken archive, so we check
every entry ourselves and *reject* the archive instead (zip-slip, CWE-22).
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

from core.errors import DataError


def _check_entries(zf: zipfile.ZipFile, dest: Path) -> None:
    dest = dest.resolve()
    for info in zf.infolist():
        name = info.filename
        target = (dest / name).resolve()
        if name.startswith(("/", "\\")) or ":" in name.split("/")[0] or not target.is_relative_to(dest):
            raise DataError(
                f"Zip entry '{name}' points outside the extraction folder; the archive was rejected and nothing was extracted.",
                "Re-create the zip from the dataset folder itself (e.g. `cd ROOT && zip -r ../data.zip .`).",
            )
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise DataError(f"Zip entry '{name}' is a symbolic link; links are not accepted.", "Zip real files only.")


def extract_zip(zip_path: str | Path, cache_root: Path) -> Path:
    """Extract once into ``cache_root/zips/<sha1>``; return the dataset root inside it."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise DataError(f"Zip file not found: {zip_path}.", "Check the path.")
    digest = hashlib.sha1(zip_path.read_bytes()).hexdigest()[:16]
    dest = cache_root / "zips" / digest
    done = dest / ".extracted"
    if not done.exists():
        try:
            with zipfile.ZipFile(zip_path) as zf:
                _check_entries(zf, dest)
                tmp = dest.with_name(dest.name + ".partial")
                shutil.rmtree(tmp, ignore_errors=True)
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{zip_path.name} is not a valid zip file ({exc}).", "Upload the archive again, or re-create it with `zip -r`.") from exc
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
