"""The cache's disk budget: uploads, their extracted copies and decoded datasets, checked before writing.

On a server shared by a class, a student can fill the disk with uploads (an archive of many
small zero-filled files stays under the per-entry compression check and extracts to
gigabytes). So before anything is written, what it will take is counted against two budgets:

* ``IMBALANCE_LAB_DISK_PER_USER_GB`` (default 4): one identity's folder, ``cache/users/<name>``;
* ``IMBALANCE_LAB_DISK_GB`` (default 32): the whole cache folder (every identity, decoded datasets).

When a write would pass one, the least recently used entries (an upload, an extracted zip, a
decoded dataset: each a folder whose modification time ``touch`` renews on every use) are
removed first, oldest first, never one that a queued or running job uses (``in_use``) and never
the one being written; if that is not enough the write is refused with the numbers. Uploads
that fail to extract or load are removed at once (``discard_upload``).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

from core.data.budget import GB, gb_setting
from core.errors import DataError
from core.paths import cache_dir

USER_VAR = "IMBALANCE_LAB_DISK_PER_USER_GB"
SERVER_VAR = "IMBALANCE_LAB_DISK_GB"
DEFAULT_USER_GB = 4.0
DEFAULT_SERVER_GB = 32.0
# the folders of the cache whose entries are evictable (each child a self-contained copy)
ENTRY_PARENTS = ("uploads", "zips", "datasets")


def budgets(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(per-identity bytes, whole-cache bytes)."""
    env = os.environ if env is None else env
    return gb_setting(env, USER_VAR, DEFAULT_USER_GB), gb_setting(env, SERVER_VAR, DEFAULT_SERVER_GB)


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (links not followed), 0 if it is missing."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def upload_need(data: bytes) -> int:
    """What an uploaded zip takes on disk: itself plus what its central directory says it unpacks to."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return len(data) + sum(i.file_size for i in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return len(data)  # extraction refuses it before writing anything


def touch(path: str | os.PathLike) -> None:
    """Mark the cache entry holding ``path`` as used now (the LRU order)."""
    entry = entry_of(Path(path))
    if entry is not None:
        try:
            os.utime(entry)
        except OSError:
            pass


def entry_of(path: Path) -> Path | None:
    """The evictable entry (``…/uploads/<x>``, ``…/zips/<x>``, ``datasets/<x>``) that holds ``path``, if any."""
    p = Path(path).expanduser().resolve()
    cache = cache_dir().resolve()
    if not p.is_relative_to(cache):
        return None
    parts = p.relative_to(cache).parts
    for i, part in enumerate(parts[:-1]):
        if part in ENTRY_PARENTS:
            return cache.joinpath(*parts[: i + 2])
    return None


def entries(under: Path) -> list[Path]:
    """Every evictable entry under ``under``, least recently used first."""
    found = []
    for parent in ENTRY_PARENTS:
        for folder in [under / parent] + sorted((under / "users").glob(f"*/{parent}")):
            if folder.is_dir():
                found += [e for e in folder.iterdir() if e.is_dir()]
    return sorted(set(found), key=lambda e: e.stat().st_mtime)


def _busy(entry: Path, in_use: Iterable[Path]) -> bool:
    e = entry.resolve()
    for u in in_use:
        u = Path(u).expanduser().resolve()
        if u == e or u.is_relative_to(e) or e.is_relative_to(u):
            return True
    return False


def _evict(under: Path, used: int, need: int, budget: int, keep: list[Path]) -> int:
    """Remove LRU entries under ``under`` until ``used + need`` fits ``budget``; returns the new ``used``."""
    for entry in entries(under):
        if used + need <= budget:
            break
        if _busy(entry, keep):
            continue
        size = folder_bytes(entry)
        shutil.rmtree(entry, ignore_errors=True)
        used -= size
    return used


def make_room(need: int, own: Path | None, in_use: Iterable[Path] = (), what: str = "This upload", env: Mapping[str, str] | None = None) -> None:
    """Check ``need`` more bytes against the identity's folder ``own`` (None: no per-identity budget)
    and the whole cache, evicting LRU entries not in use; a DataError names the numbers if it cannot."""
    per_user, server = budgets(env)
    keep = list(in_use)
    checks = ([(own, per_user, USER_VAR, "your own folder")] if own is not None else []) + [(cache_dir(), server, SERVER_VAR, "the server's cache")]
    for under, budget, var, label in checks:
        used = _evict(under, folder_bytes(under), need, budget, keep)
        if used + need > budget:
            raise DataError(f"{what} needs {need / GB:.2f} GB of disk; {label} holds {used / GB:.2f} GB of a {budget / GB:.2f} GB "
                            "budget (what is in use by a job is kept); nothing was written.",
                            f"Upload a smaller zip or remove old uploads; the person running the server can raise {var}.")


def has_room(need: int, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``need`` more bytes fit the whole cache's budget (a decoded-dataset copy is skipped, not forced)."""
    return folder_bytes(cache_dir()) + need <= budgets(env)[1]


def discard_upload(zip_path: str | os.PathLike) -> None:
    """Remove an upload (its ``uploads/<digest>`` folder) and its extracted copy (``zips/<digest>``)."""
    entry = entry_of(Path(zip_path))
    if entry is None or entry.parent.name != "uploads":
        return
    shutil.rmtree(entry, ignore_errors=True)
    zips = entry.parent.parent / "zips"
    for extracted in zips.glob(f"{entry.name}*"):
        shutil.rmtree(extracted, ignore_errors=True)
    for folder in (entry.parent, zips, entry.parent.parent):  # the folders it made, when now empty (never the cache itself)
        if folder.resolve() != cache_dir().resolve():
            try:
                folder.rmdir()
            except OSError:  # not empty (other uploads), or gone
                pass
