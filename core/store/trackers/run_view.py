"""What every tracker takes from a lab run: namespaced scalars, flat params, the artefacts, the study above it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.store.atomic import atomic_write_json, read_json

STATE_FILE = "tracking.json"  # the trackers' run ids of a lab run (a resumed run logs on into the same ones)
PREVIEWS = "images/preview_*.png"  # the CFG trainer's preview grids (core.train.cfg_unet)
ARTEFACTS = ("config.json", "results.json", "report.html")  # those a run has are uploaded when it ends
# Keys that measure a model rather than its training; test_/val_/eval_ prefixes say so too.
EVAL_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "minority_f1", "fid", "kid", "fd_judge", "precision", "recall",
             "near_copy_rate", "tail_consistency", "class_consistency", "diversity"}


def metric_key(key: str) -> str:
    """``loss`` -> ``train/loss``; ``test_accuracy`` -> ``eval/accuracy``; a key with a ``/`` is kept."""
    if "/" in key:
        return key
    for prefix in ("test_", "val_", "eval_"):
        if key.startswith(prefix):
            return "eval/" + key[len(prefix):]
    return ("eval/" if key in EVAL_KEYS else "train/") + key


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics row that a tracker plots, under namespaced keys (not time/step, bools or text)."""
    return {metric_key(k): float(v) for k, v in row.items()
            if k not in ("time", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)}


def flat_config(config: dict) -> dict[str, Any]:
    """``{"data": {"dataset": "digits"}}`` -> ``{"data.dataset": "digits"}`` (lists stay lists)."""
    out: dict[str, Any] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict) and v:
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(json.loads(json.dumps(config, default=str)), "")
    return out


def git_commit(config: dict) -> str | None:
    from core.store.provenance import KEY

    return (config.get(KEY) or {}).get("commit")


def tracker_of(config: dict) -> str | None:
    """The tracker a run's config asks for; a study's is its trainings' (``classifier``/``cfg_train``)."""
    if config.get("kind") == "study":
        return (config.get("classifier") or {}).get("log_with") or (config.get("cfg_train") or {}).get("log_with")
    return config.get("log_with")


def study_of(run_dir: Path) -> Path | None:
    """The study folder a cell's run lives in (``<study>/cells/<id>``, ``<study>/cfg/seed<k>``), else None."""
    for folder in (run_dir.parent, run_dir.parent.parent):
        if (read_json(folder / "config.json", {}) or {}).get("kind") == "study":
            return folder
    return None


def artefacts(run_dir: Path) -> list[Path]:
    return [run_dir / n for n in ARTEFACTS if (run_dir / n).is_file()]


def previews(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob(PREVIEWS))


def preview_step(path: Path) -> int:
    try:
        return int(path.stem.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        return 0


def saved_ids(run_dir: Path) -> dict:
    return read_json(run_dir / STATE_FILE, {}) or {}


def save_ids(run_dir: Path, **ids: Any) -> None:
    """Merge ids into tracking.json (MLflow's and W&B's live side by side)."""
    atomic_write_json(run_dir / STATE_FILE, {**saved_ids(run_dir), **ids})
