"""One results file per benchmark: bench/results/<name>.json, committed, so every figure in
BENCHMARKS.md can be checked against the run that produced it.

    from bench.record import write_result
    write_result("quick_study", {"minutes": 12.1, ...}, markdown="| table | ... |")

The file holds the command, the date, the machine (cores, torch, device) and the commit
measured (HEAD, with ``dirty`` when the tree had uncommitted changes). ``bench/assemble.py``
builds BENCHMARKS.md from these files and the prose templates in ``bench/templates/``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

from core.store.provenance import git_state

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def machine(device: str | None = None) -> dict:
    info = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.machine()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    info["device"] = device or "cpu"
    return info


def write_result(name: str, results: dict, markdown: str | None = None, device: str | None = None,
                 command: str | None = None, out_dir: Path | None = None) -> Path:
    """Write bench/results/<name>.json (atomically) and return its path."""
    payload = {
        "name": name,
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(device),
        **{k: v for k, v in git_state(ROOT).items() if k != "git_error"},  # commit, dirty (None without git); as runs record it
        "results": results,
    }
    if markdown is not None:
        payload["markdown"] = markdown
    out = Path(out_dir or RESULTS) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    os.replace(tmp, out)
    return out
