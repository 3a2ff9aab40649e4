"""Where the lab keeps things. Every location can be moved with an environment variable.

From a checkout (or ``pip install -e .``) runs, models and caches live beside the code, as
they always did. From a regular install the code sits in site-packages, which is no place for
data: there they default to the folder the command was started in.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DIST_NAME = "imbalance-lab"
APP_PACKAGE = "_app"  # core/_app/ in a wheel: app.py, app_pages/, .streamlit/, studies/ (pyproject package-data)


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

    A checkout (or an editable install): the project folder. A wheel, ``pip install --target``
    or a zipapp: the package data ``core/_app/`` (pyproject.toml maps it to the top of the
    repository), read with importlib.resources; from inside a zip it is first copied out to
    ``<cache>/app-<version>/``, since Streamlit runs files, not zip members.
    """
    if is_checkout():
        return PROJECT_ROOT
    from importlib.resources import files

    shipped = files("core") / APP_PACKAGE
    if isinstance(shipped, Path):
        return shipped.resolve() if (shipped / "app.py").is_file() else PROJECT_ROOT
    if not (shipped / "app.py").is_file():
        return PROJECT_ROOT  # not shipped either: the code's own folder is the best guess
    from core import __version__

    out = cache_dir() / f"app-{__version__}"
    if not (out / "app.py").is_file():
        _copy_tree(shipped, out)
    return out


def _copy_tree(src, dest: Path) -> None:
    """Copy an importlib.resources Traversable (e.g. a folder in a zip) to ``dest``."""
    from core.store.atomic import atomic_write_bytes

    for item in src.iterdir():
        if item.is_dir():
            _copy_tree(item, dest / item.name)
        else:
            atomic_write_bytes(dest / item.name, item.read_bytes())
