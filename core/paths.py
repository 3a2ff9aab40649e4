"""Where the lab keeps things. Every location can be moved with an environment variable.

From a checkout (or ``pip install -e .``) runs, models and caches live beside the code, as
they always did. From a regular install the code sits in site-packages, which is no place for
data: there they default to the folder the command was started in.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DIST_NAME = "imbalance-lab"
SHARE = "share/imbalance-lab"  # where a wheel puts app.py, app_pages/, .streamlit/, studies/ (pyproject data-files)


def is_checkout(root: Path | None = None) -> bool:
    """True when the code runs from the project folder (a clone or an editable install)."""
    root = PROJECT_ROOT if root is None else root
    return (root / "pyproject.toml").is_file() and (root / "app.py").is_file()


def data_root() -> Path:
    """The folder that holds runs/, models/ and .cache/ unless an environment variable says otherwise."""
    return PROJECT_ROOT if is_checkout() else Path.cwd()


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def cache_dir() -> Path:
    """Decoded-dataset cache and torchvision downloads (git-ignored)."""
    return _env_path("IMBALANCE_LAB_CACHE", data_root() / ".cache")


def models_dir() -> Path:
    """Weights that come from outside: Stable Diffusion, Inception, feature extractors."""
    return _env_path("IMBALANCE_LAB_MODELS", data_root() / "models")


def runs_dir() -> Path:
    """One folder per run the lab trains or generates."""
    return _env_path("IMBALANCE_LAB_RUNS", data_root() / "runs")


def app_dir() -> Path:
    """The folder holding the Streamlit app (app.py, app_pages/, .streamlit/, studies/).

    A checkout: the project folder. A regular install: ``<prefix>/share/imbalance-lab``, found
    through the installed distribution's file list (so ``--user`` and venv installs both work).
    """
    if is_checkout():
        return PROJECT_ROOT
    try:
        files = metadata.distribution(DIST_NAME).files or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.as_posix().endswith(f"{SHARE}/app.py"):
            return Path(f.locate()).resolve().parent
    return PROJECT_ROOT  # not installed either: the code's own folder is the best guess
