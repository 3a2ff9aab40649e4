"""Where the lab keeps things. Every location can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def cache_dir() -> Path:
    """Decoded-dataset cache and torchvision downloads (git-ignored)."""
    return _env_path("IMBALANCE_LAB_CACHE", PROJECT_ROOT / ".cache")


def models_dir() -> Path:
    """Weights that come from outside: Stable Diffusion, Inception, feature extractors."""
    return _env_path("IMBALANCE_LAB_MODELS", PROJECT_ROOT / "models")


def runs_dir() -> Path:
    """One folder per run the lab trains or generates."""
    return _env_path("IMBALANCE_LAB_RUNS", PROJECT_ROOT / "runs")
