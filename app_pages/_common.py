"""Streamlit helpers shared by the pages: the job manager, the chosen dataset, job panels.

Only display and wiring live here; the work is done by ``core`` (jobs run in the job
manager's threads, never in the script thread).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import streamlit as st

from core.data.imageset import LoadedDataset
from core.data.loading import DataConfig, load_dataset
from core.errors import LabError
from core.job_runners import CFG_KIND, CLS_KIND  # importing it registers the lab's job kinds with core.jobs
from core.jobs import RESUMABLE, Job, JobManager, format_eta
from core.paths import runs_dir
from core.runs import Run, list_runs
from core import viz

DATA_KEY = "data_cfg"
POLL_S = 1.0  # how often job panels refresh (seconds)


# ------------------------------------------------------------------------ job manager
@st.cache_resource(show_spinner=False)
def _manager(root: str) -> JobManager:
    return JobManager(root=root)


def manager() -> JobManager:
    """The one JobManager of this server process (per runs folder), shared by every tab."""
    return _manager(str(runs_dir()))


def optional(module: str):
    """Import a core module that may not have landed yet: (module, None) or (None, reason)."""
    try:
        return importlib.import_module(module), None
    except ImportError as exc:
        return None, f"{module} is not available yet ({type(exc).__name__}: {exc})."


# --------------------------------------------------------------------------- dataset
def default_data_cfg() -> DataConfig:
    return DataConfig(dataset="digits", profile="paper")


def data_cfg() -> DataConfig:
    """The dataset chosen on the Dataset page (embedded digits + the paper's profile by default)."""
    d = st.session_state.get(DATA_KEY)
    return DataConfig.from_dict(d) if d else default_data_cfg()


def set_data_cfg(cfg: DataConfig) -> None:
    st.session_state[DATA_KEY] = cfg.to_dict()


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
def _load(dataset: str, data_dir: str | None, image_size: int | None, test_fraction: float, stamp: float) -> LoadedDataset:
    return load_dataset(DataConfig(dataset=dataset, data_dir=data_dir, image_size=image_size, test_fraction=test_fraction))


def load(cfg: DataConfig) -> LoadedDataset:
    return _load(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.test_fraction, _stamp(cfg.data_dir))


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


# --------------------------------------------------------------------------- run lists
def runs_of(kind: str, state: str | None = "done") -> list[Run]:
    return [r for r in list_runs(runs_dir()) if r.kind == kind and (state is None or r.status.get("state") == state)]


def newest_preview(run: Run) -> Path | None:
    folder = run.path / "images"
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("preview*.png"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


# ------------------------------------------------------------------------ job panels
def job_panel(run_id: str, key: str, show_curve: bool = True, show_preview: bool = True) -> dict:
    """Progress (with ETA), message, error, loss curve, newest preview, cancel/resume for one run.

    Returns the run's status dict (empty if the folder is gone).
    """
    mgr = manager()
    run = Run(Path(mgr.root) / run_id)
    job: Job | None = mgr.get(run_id)
    if not run.exists():
        st.warning(f"Run **{run_id}** was removed from disk while shown; nothing else was touched. Pick another run.")
        return {}
    status = run.status
    state = job.state if job else status.get("state", "?")
    step = job.step if job else int(status.get("step") or 0)
    total = job.total if job else int(status.get("total") or 0)
    frac = min(1.0, step / total) if total else (1.0 if state == "done" else 0.0)
    eta = format_eta(job.eta_s) if job and state == "running" else ""
    label = f"**{state}**" + (f" · step {step}/{total}" if total else "") + (f" · {eta}" if eta else "")
    st.progress(frac, text=f"{run.kind} `{run_id}` — {label}")
    message = job.message if job else status.get("message", "")
    if state == "failed":
        st.error(status.get("error") or (job.error if job else None) or message)
        tb = (job.traceback if job else None) or status.get("traceback")
        if tb:
            with st.expander("traceback"):
                st.code(tb)
    elif state == "interrupted":
        st.warning(message or "interrupted by a server restart; resume to continue from the last checkpoint")
    elif message:
        st.caption(message)
    if state in ("queued", "running"):
        if st.button("Cancel", key=f"{key}-cancel-{run_id}"):
            mgr.cancel(run_id)
            st.toast(f"Cancelling {run_id}: it saves a checkpoint at its next step.")
    elif state in RESUMABLE and run.kind in (CFG_KIND, CLS_KIND):
        if st.button("Resume", key=f"{key}-resume-{run_id}"):
            try:
                mgr.resume(run_id)
                st.toast(f"Resumed {run_id}")
            except LabError as exc:
                st.error(str(exc))
    latest = (job.latest_metrics if job else None) or {}
    if latest:
        shown = {k: v for k, v in latest.items() if isinstance(v, (int, float)) and k not in ("time",)}
        st.caption("latest: " + " · ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in list(shown.items())[:6]))
    metrics = run.metrics() if show_curve else None
    has_curve = metrics is not None and not metrics.empty and "step" in metrics and any("loss" in c for c in metrics.columns)
    prev = None
    if show_preview:
        prev = (job.latest_preview if job and job.latest_preview and job.latest_preview.exists() else None) or newest_preview(run)
    if has_curve or prev is not None:
        left, right = st.columns([3, 2]) if has_curve and prev is not None else (st.container(), st.container())
        if has_curve:
            left.plotly_chart(viz.loss_figure(metrics), key=f"{key}-loss-{run_id}", width="stretch")
        if prev is not None:
            right.image(str(prev), caption=f"newest preview: {prev.name}", width="stretch" if has_curve else 360)
    return status


def sidebar_jobs() -> None:
    """Running and queued jobs, refreshed on every page."""

    @st.fragment(run_every=2.0)
    def _jobs() -> None:
        active = manager().active()
        st.markdown("**Jobs**")
        if not active:
            st.caption("no job running")
        for job in active:
            text = f"{job.kind} · {job.state}"
            if job.total:
                text += f" · {job.step}/{job.total} · {format_eta(job.eta_s)}"
            st.progress(job.fraction, text=text)
            st.caption(f"`{job.id}`")

    with st.sidebar:
        _jobs()


def show_lab_error(exc: LabError) -> None:
    st.error(str(exc))


def json_block(d: dict) -> str:
    return json.dumps(d, indent=2, default=str)
