"""Atomic file writes: write to a temp file in the same folder, fsync, then rename.

A reader (or a process killed mid-write) sees either the old file or the new one,
never a torn one. ``os.replace`` is atomic on POSIX and Windows within one filesystem.
The file ends with the mode a plain ``open(path, "w")`` would give it: an existing file's own
mode, else 0666 less the umask (``mkstemp`` makes 0600, unreadable to colleagues on a shared disk).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from core.errors import DiskFullError, LabError

LOW_SPACE = 1 << 20  # bytes: a write that failed with less free space than this is taken for a full disk
# How a full disk reads in the libraries' errors, as seen on a full 64 KiB tmpfs: open()/write()
# raise OSError(ENOSPC); safetensors raises SafetensorError("... No space left on device (os error 28)");
# torch.save raises RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
# which names no cause, so the disk's free space decides.
_FULL_TEXTS = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")


def is_disk_full(exc: BaseException, folder: str | os.PathLike) -> bool:
    """Whether a failed write failed for want of space (call it before deleting the partial file)."""
    if isinstance(exc, LabError) or not isinstance(exc, Exception):
        return False
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if any(t in str(exc) for t in _FULL_TEXTS):
        return True
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE
    except OSError:
        return False


def disk_full_error(path: str | os.PathLike, exc: BaseException) -> DiskFullError:
    return DiskFullError(f"The disk is full: could not write {path} ({type(exc).__name__}: {str(exc)[:200]}).",
                         "Free space on that disk (or write to a folder on another disk) and run again; "
                         "the file that was there before is left as it was.")


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask. Linux shows it in /proc/self/status; elsewhere it is read by setting
    and restoring it (under a lock, so two writers of this module never see the other's 0)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def plain_write_mode(path: str | os.PathLike) -> int:
    """The permission bits ``open(path, "w")`` leaves: the existing file's, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically move tmp_path onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, plain_write_mode(path))
        os.replace(tmp, path)
    except BaseException as exc:
        full = is_disk_full(exc, path.parent)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if full:
            raise disk_full_error(path, exc) from exc
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def _w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, _w)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def swap_folder(tmp: str | os.PathLike, final: str | os.PathLike, old: str | os.PathLike) -> Path:
    """Put the finished folder ``tmp`` in place of ``final``: the previous one is moved aside to
    ``old`` and removed after the swap, so a crash leaves a whole folder under one of the two
    names (never a mix); a reader may fall back to ``old``."""
    tmp, final, old = Path(tmp), Path(final), Path(old)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default
