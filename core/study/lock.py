"""One process per study folder: ``run_study`` holds ``.<name>.study.lock`` beside the folder ``<name>``
(a ``filelock`` OS lock) while it runs, so two ``experiment --out X`` never run the same cells at once.

The lock sits beside the folder, not in it, so a refused or new study finds its folder as it was
(a new one empty). The OS lock is released by the kernel when its holder dies (a SIGKILLed study
leaves no stale lock). Who holds it is written next to it, in ``.<name>.study.lock.json`` (pid,
host, command, start), so a second process can name the holder; filelock truncates its lock
file on every try, so the note cannot live in it.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from core.store.atomic import atomic_write_json, read_json
from core.errors import ConfigError



def lock_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.study.lock"


def holder_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.study.lock.json"


def holder_words(folder: Path) -> str:
    """Who holds the folder's lock, in words (from its note; the note may be missing mid-takeover)."""
    h = read_json(holder_path(folder)) or {}
    if not h:
        return "another process (it has not written its name yet)"
    return f"process {h.get('pid')} on {h.get('host')} (started {h.get('started')}: {h.get('command')})"


@contextmanager
def study_lock(folder: str | os.PathLike, wait: float = 0.0) -> Iterator[None]:
    """Hold the study folder's lock for the ``with`` block. ``wait`` seconds: how long to wait for
    another holder (0: refuse at once; -1: wait as long as it takes). Refused: ConfigError naming
    the holder."""
    folder = Path(folder).resolve()
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(folder), timeout=wait)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(f"The study in {folder} is being run by {holder_words(folder)}; two runs of one study "
                          f"would run the same cells at once.",
                          "Wait for it to finish (or stop it), then run again to resume; or choose another --out folder.") from None
    try:
        atomic_write_json(holder_path(folder), {"pid": os.getpid(), "host": socket.gethostname(),
                                                 "command": " ".join(sys.argv)[:500],
                                                 "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        yield
    finally:
        try:
            os.unlink(holder_path(folder))
        except FileNotFoundError:
            pass
        lock.release()


def one_run_per_folder(run_study):
    """Decorate ``run_study(cfg, out_dir, ...)``: the config is checked first (a bad one touches no
    folder), then the call holds the folder's lock; ``lock_wait=`` seconds as in :func:`study_lock`."""
    import functools

    @functools.wraps(run_study)
    def locked(cfg, out_dir, *args, lock_wait: float = 0.0, **kwargs):
        cfg.validate()
        with study_lock(out_dir, lock_wait):
            return run_study(cfg, out_dir, *args, **kwargs)

    return locked
