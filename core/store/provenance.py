"""What made a run: the code's commit, the package versions, the device and who started it.

``record()`` is written into every run's ``config.json`` (``core.store.runs``) and every study's (a
study is a run of kind ``study``) under the key ``provenance``; ``bench/record.py`` uses the
same ``git_state`` for benchmark results. Everything here is cheap (two ``git`` calls, read
once per process) and never raises: what cannot be known is ``None`` with the reason.
"""

from __future__ import annotations

import functools
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from core.paths import PROJECT_ROOT

KEY = "provenance"  # the config.json key
PACKAGES = ("torch", "torchvision", "diffusers", "accelerate", "streamlit", "torch-fidelity")


def git_state(root: str | Path = PROJECT_ROOT) -> dict:
    """``{"commit": 40-hex or None, "dirty": bool or None, "git_error": None or why not}``.

    Dirty means tracked files differ from the commit (untracked files do not count: run
    folders and caches are untracked).
    """
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"git {args[0]} failed")
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--verify", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except FileNotFoundError:
        return {"commit": None, "dirty": None, "git_error": "git is not installed"}
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:  # not a repository (an installed copy), no commit yet
        return {"commit": None, "dirty": None, "git_error": f"{root} is not a git checkout with a commit ({exc})"}
    return {"commit": commit, "dirty": dirty, "git_error": None}


@functools.cache
def _code_git_state() -> dict:
    # Once per process: the code a process runs is what it imported, so a commit made while a
    # server runs does not describe that server's runs anyway.
    return git_state(PROJECT_ROOT)


def versions() -> dict:
    """The versions that decide a run's numbers, by distribution name (``None``: not installed)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def command_line(argv: list[str] | None = None) -> str:
    """``sys.argv`` as a shell line; ``.../core/__main__.py`` reads back as ``python -m core``."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "core":
        argv = ["python", "-m", "core", *argv[1:]]
    return shlex.join(argv)


def _device_name(device: str | None) -> str:
    if device not in (None, "", "auto"):
        return str(device)
    torch = sys.modules.get("torch")  # every run imports torch; a bare config write need not
    return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"


def record(device: str | None = None, page: str | None = None, argv: list[str] | None = None) -> dict:
    """The provenance block: commit, dirty, versions, device, and the command line or app page."""
    out = {**_code_git_state(), "versions": versions(), "device": _device_name(device)}
    torch = sys.modules.get("torch")
    if out["device"].startswith("cuda") and torch is not None and torch.cuda.is_available():
        first = out["device"].split(",")[0]  # a lane list such as "cuda:0,cuda:1" names its first GPU
        try:
            out["gpu"] = torch.cuda.get_device_name(torch.device(first).index or 0)
        except (RuntimeError, AssertionError, ValueError):
            out["gpu"] = None
    out["page"] = page
    out["command"] = command_line(argv)
    return out


def summary_row(name: str, prov: dict) -> dict:
    """One table row for a run's or study's provenance (the Results page); ``prov`` empty: not recorded."""
    if not prov:
        return {"run": name, "commit": "not recorded (run made before provenance was kept)"}
    commit = prov.get("commit") or f"unknown: {prov.get('git_error') or 'no git'}"
    row = {"run": name, "commit": commit, "dirty": prov.get("dirty"), "device": prov.get("gpu") or prov.get("device"),
           "started by": f"page {prov['page']}" if prov.get("page") else prov.get("command")}
    row.update(prov.get("versions") or {})
    return row
