"""Atomic checkpoints: safetensors for weights, ``torch.save`` (loaded weights_only) for the rest.

    <dir>/<name>/weights.safetensors   model (and ``ema.`` prefixed EMA) tensors
    <dir>/<name>/state.pt              optimizer, scheduler, step, RNG: tensors and plain types only
    <dir>/<name>/config.json           the job's config

The folder is written as ``.<name>.tmp`` and swapped in with renames, so a process killed
mid-save leaves the previous checkpoint intact (``.<name>.old`` is used if the kill lands
between the two renames).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from core.store.atomic import disk_full_error, is_disk_full, swap_folder
from core.errors import ConfigError


def save_checkpoint(root: str | os.PathLike, name: str, weights: dict[str, torch.Tensor], state: dict[str, Any], config: dict) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final, tmp, old = root / name, root / f".{name}.tmp", root / f".{name}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    current = "weights.safetensors"
    try:  # a full disk: the partial folder goes, the previous checkpoint stays, the error says so
        tmp.mkdir()
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / current))
        current = "state.pt"
        torch.save(state, tmp / current)
        current = "config.json"
        (tmp / current).write_text(json.dumps(config, indent=2, default=str))
        for f in tmp.iterdir():
            current = f.name
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    except Exception as exc:
        full = is_disk_full(exc, root)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise disk_full_error(final / current, exc) from exc
        raise
    return swap_folder(tmp, final, old)


def checkpoint_path(root: str | os.PathLike, name: str = "latest") -> Path | None:
    root = Path(root)
    for cand in (root / name, root / f".{name}.old"):
        if (cand / "weights.safetensors").exists() and (cand / "state.pt").exists():
            return cand
    return None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[dict, dict, dict]:
    """(weights, state, config) from a checkpoint folder, with a clear error if broken."""
    path = Path(path)
    try:
        weights = load_file(str(path / "weights.safetensors"), device=str(map_location))
        state = torch.load(path / "state.pt", map_location=map_location, weights_only=True)
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"Checkpoint {path} is missing {Path(exc.filename).name}.", "Point at a run's checkpoints/latest folder, or retrain.") from exc
    except Exception as exc:
        raise ConfigError(f"Checkpoint {path} is corrupt ({type(exc).__name__}: {str(exc)[:200]}).", "Use the run's other checkpoint (best/latest) or retrain.") from exc
    return weights, state, config
