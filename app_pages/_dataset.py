"""The dataset a tab works on: its choice (URL, session, the server's last workspace) and its
cached, guarded loading (inside the data roots, within the memory budget)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data import disk
from core.data.imageset import LoadedDataset
from core.data.loading import DataConfig, load_dataset
from core.errors import LabError
from core.serving import workspace
from app_pages._serving import guard_data, shared_server, show_notes
from app_pages._identity import check_dir

DATA_KEY = "data_cfg"


def default_data_cfg() -> DataConfig:
    return DataConfig(dataset="digits", profile="paper")


def data_cfg() -> DataConfig:
    """This tab's dataset: its URL's query parameters win; then this session's choice; then the
    last workspace saved on the server (a new tab); then embedded digits with the paper's profile.

    The choice is written back to the URL (page switches clear it), so a reload or a shared
    link reproduces the view.
    """
    notes: list[str] = []
    cfg = workspace.from_params(st.query_params.to_dict(), notes)
    if notes:  # out-of-range or junk values: say so once, and put the values used in the URL
        show_notes(notes)
        _to_url(cfg)
    if cfg is None:
        d = st.session_state.get(DATA_KEY)
        cfg = DataConfig.from_dict(d) if d else (_saved_data() or default_data_cfg())
        _to_url(cfg)
    st.session_state[DATA_KEY] = cfg.to_dict()
    return cfg


def _to_url(cfg: DataConfig) -> None:
    want = workspace.to_params(cfg)
    if st.query_params.to_dict() != want:
        st.query_params.from_dict(want)


def set_data_cfg(cfg: DataConfig) -> None:
    """The Dataset page's valid choice: this tab's session and URL, and the server's last workspace."""
    st.session_state[DATA_KEY] = cfg.to_dict()
    _to_url(cfg)
    _save_workspace(data=cfg.to_dict())


# On a server shared beyond this machine each browser session keeps its own workspace (its
# session_state): the server-wide file would hand one user's data choice to the next.
def _load_workspace() -> dict:
    return {} if shared_server() else workspace.load()


def _save_workspace(**parts) -> None:
    if not shared_server():
        workspace.save(**parts)


def _saved_data() -> DataConfig | None:
    return None if shared_server() else workspace.saved_data()


def _stamp(data_dir: str | None) -> float:
    """A cheap change marker for folder sources (mtimes of the root and two levels below)."""
    if not data_dir:
        return 0.0
    p = Path(data_dir).expanduser()
    if not p.exists():
        return -1.0
    stamps = [p.stat().st_mtime]
    if p.is_dir():
        for sub in p.iterdir():
            stamps.append(sub.stat().st_mtime)
            if sub.is_dir():
                stamps += [s.stat().st_mtime for s in sub.iterdir() if s.is_dir()]
    return max(stamps)


@st.cache_resource(max_entries=4, show_spinner="Loading the dataset (the first load of a large one decodes it once)…")
def _load(dataset: str, data_dir: str | None, image_size: int | None, test_fraction: float, stamp: float, judge_per_class: int = 0) -> LoadedDataset:
    return load_dataset(DataConfig(dataset=dataset, data_dir=data_dir, image_size=image_size, test_fraction=test_fraction,
                                   judge_per_class=judge_per_class))


def load(cfg: DataConfig) -> LoadedDataset:
    """The dataset, once its folder is known to lie inside the data roots and its estimated
    memory within the budget (a LabError otherwise: nothing of the folder is read or shown)."""
    check_dir(cfg.data_dir)  # before anything reads the folder, even its mtimes
    stamp = _stamp(cfg.data_dir)
    guard_data(cfg.dataset, cfg.data_dir, cfg.image_size, stamp)
    if cfg.data_dir:
        disk.touch(cfg.data_dir)  # used now: the disk budget evicts the least recently used uploads first
    return _load(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.test_fraction, stamp, cfg.judge_per_class)


def prepared(cfg: DataConfig | None = None):
    """(LoadedDataset, imbalanced train split) for the chosen dataset; LabError on bad input."""
    from core.data.profiles import apply_profile

    cfg = cfg or data_cfg()
    ds = load(cfg)
    return ds, apply_profile(ds.train, cfg)


def prepared_or_stop(cfg: DataConfig | None = None):
    try:
        return prepared(cfg)
    except LabError as exc:
        st.error(str(exc))
        st.info("Fix the dataset on the **Dataset** page.")
        st.stop()


def dataset_caption(cfg: DataConfig | None = None) -> str:
    cfg = cfg or data_cfg()
    extra = f", ratio {cfg.ratio:g}" if cfg.profile in ("linear", "exponential", "step") else ""
    return f"Dataset: **{cfg.dataset}**, profile **{cfg.profile}**{extra} (change it on the Dataset page)"
