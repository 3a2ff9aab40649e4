"""Starting a study from the app: where its TOML may come from, and the app's bounds on it.

A study started from the browser reads a preset, a file of the project's studies/ folder (picked
by name, never a typed path) or an uploaded TOML. Its data folder, if it names one, must resolve
inside the data roots, and its sizes stay within BOUNDS. The CLI, run by the local user, is not
restricted (``python -m core experiment --config ANY.toml``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from core.settings.bounds import BOUNDS as LAB_BOUNDS
from core.errors import ConfigError
from core.study.config import StudyConfig
from core.paths import app_dir

STUDIES_DIR = app_dir() / "studies"  # the project's studies/, also from a wheel (core/_app/studies)
MAX_UPLOAD_BYTES = 64 * 1024  # a study file is a few hundred bytes; anything this large is not one

# Upper bounds on what a study started from the app may ask for (a shared server's CPU and disk).
# The page's help text states them.
BOUNDS = {"seeds": int(LAB_BOUNDS["study_seeds"].hi), "methods": 16, "cfg_ws": 8, "classifiers": 3, "target": 10_000, "cfg_train.steps": 200_000,
          "classifier.steps": 200_000, "classifier.epochs": 300}


def study_files() -> dict[str, Path]:
    """{file name: path} of the TOML studies shipped in studies/."""
    return {p.name: p for p in sorted(STUDIES_DIR.glob("*.toml"))} if STUDIES_DIR.is_dir() else {}


def from_study_file(name: str) -> StudyConfig:
    """A study of studies/, by its file name (nothing outside that folder is read)."""
    files = study_files()
    if name not in files:
        raise ConfigError(f"There is no study file '{name}' in studies/.", f"Pick one of: {', '.join(files) or '(none)'}, or upload a TOML file.")
    return StudyConfig.from_toml(files[name])


def from_upload(name: str, data: bytes) -> StudyConfig:
    """A study from an uploaded TOML file (parsed from a private temporary copy)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ConfigError(f"{name} is {len(data):,} bytes; a study file is at most {MAX_UPLOAD_BYTES:,}.", "Upload the study's .toml file.")
    with tempfile.TemporaryDirectory(prefix="study-upload-") as tmp:
        path = Path(tmp) / (Path(name).name or "study.toml")
        path.write_bytes(data)
        try:
            return StudyConfig.from_toml(path)
        except ConfigError as exc:  # name the upload, not the temporary copy
            raise ConfigError(exc.problem.replace(str(path), name), exc.fix and exc.fix.replace(str(path), name)) from None


def check_data_dir(cfg: StudyConfig, roots: list[Path] | None = None) -> None:
    """DataError when the study's data folder resolves (symlinks followed) outside the server's
    data roots (core.serving, IMBALANCE_LAB_DATA_ROOTS)."""
    from core.serving.server import check_data_dir as check_folder

    check_folder(cfg.data.data_dir, roots)


def check_bounds(cfg: StudyConfig) -> None:
    """ConfigError naming the first of the app's bounds (BOUNDS) the study exceeds."""
    sizes = {"seeds": len(cfg.seeds), "methods": len(cfg.methods), "cfg_ws": len(cfg.cfg_ws), "classifiers": len(cfg.classifiers),
             "target": cfg.target or 0, "cfg_train.steps": cfg.cfg_train.get("steps") or 0,
             "classifier.steps": cfg.classifier.get("steps") or 0, "classifier.epochs": cfg.classifier.get("epochs") or 0}
    for key, limit in BOUNDS.items():
        if float(sizes[key]) > limit:
            raise ConfigError(f"This study asks for {key} = {sizes[key]:,}; a study started from the app allows at most {limit:,}.",
                              "Make the study smaller, or run it from the command line (python -m core experiment --config FILE).")


def with_seeds(cfg: StudyConfig, n: int) -> StudyConfig:
    """The study with n seeds: its own first n, then the next unused integers."""
    if not 1 <= n <= BOUNDS["seeds"]:
        raise ConfigError(f"{n} seeds asked for; a study started from the app runs 1 to {BOUNDS['seeds']}.", "Pick fewer seeds.")
    seeds = list(cfg.seeds[:n])
    k = max(seeds, default=-1) + 1
    while len(seeds) < n:
        seeds.append(k)
        k += 1
    return dataclasses.replace(cfg, seeds=seeds)


def ready(cfg: StudyConfig) -> StudyConfig:
    """The study validated and checked against the data roots and bounds (ConfigError if not)."""
    cfg.validate()
    check_data_dir(cfg)
    check_bounds(cfg)
    return cfg


def for_shared_server(cfg: StudyConfig) -> tuple[StudyConfig, list[str]]:
    """The study as a shared server runs it: its ``device`` and ``cpu_lanes`` are the server's to
    choose (its job manager picks the device; one lane), so they are ignored, each with a note."""
    notes = []
    if cfg.device is not None:
        notes.append(f"device = {cfg.device!r} is ignored on this shared server (its job manager picks the device).")
    if cfg.cpu_lanes not in (None, 1):
        notes.append(f"cpu_lanes = {cfg.cpu_lanes} is ignored on this shared server (one lane per study).")
    return dataclasses.replace(cfg, device=None, cpu_lanes=None), notes
