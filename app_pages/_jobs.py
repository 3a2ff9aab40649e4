"""Job panels: a run's progress, message, error, loss curve, newest preview and cancel/resume; the
sidebar's running jobs; and the lists of runs a session may see (Streamlit display only)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data.loading import DataConfig
from core.errors import LabError
from core.jobs import RESUMABLE, Job, format_eta
from core.jobs.runners import CFG_KIND, CLS_KIND
from core.paths import runs_dir
from core.serving import workspace
from core.store.runs import Run, list_runs
from core.viz import figures as viz
from app_pages._export import chart_config, grid_download
from app_pages._identity import may_cancel, may_resume, may_see, owner_key, resume_owner, strict, visible
from app_pages._manager import manager
from app_pages._polling import poll_every


def run_row(run: Run) -> dict:
    """One table row for a run: id, kind, state, trained steps (of total), last message."""
    st_ = run.status
    step, total = int(st_.get("step") or 0), int(st_.get("total") or 0)
    return {"run": run.id, "kind": run.kind, "state": st_.get("state"), "steps": f"{step:,}" + (f" / {total:,}" if total else ""),
            "message": st_.get("message", "")}


def cfg_model_options(data: DataConfig | str) -> list[tuple[str, Run]]:
    """CFG models for a picker: those trained on the page's data (a DataConfig: same dataset and
    profile) first, the others marked with their profile; finished first, newest first; state and
    trained steps in the label. A dataset name alone lists that dataset's models unmarked."""
    if isinstance(data, DataConfig):
        return workspace.cfg_models(runs_of(CFG_KIND, state=None), data=data)
    return workspace.cfg_models(runs_of(CFG_KIND, state=None), data)


def fresh_model_id(page: str, options: list[tuple[str, Run]], since: float | None = None) -> str | None:
    """The id of a model in ``options`` that finished since ``page`` was last shown in this session
    (or, on its first showing, since ``since``: when its form was last used), else None. The page
    preselects it, over the generator its form remembers."""
    key = f"_models_seen_{page}"
    runs = [r for _, r in options]
    prev = st.session_state.get(key)
    new = workspace.fresh_model(runs, set(prev) if prev is not None else None, since)
    st.session_state[key] = [r.id for r in runs if r.status.get("state") == "done"]
    return new.id if new is not None else None


@st.cache_data(max_entries=32, show_spinner=False)
def _metrics(path: str, mtime: float, size: int):
    return Run(path).metrics()


def run_metrics(run: Run):
    """run.metrics(), re-read only when metrics.jsonl changed (polling must stay cheap)."""
    f = run.path / "metrics.jsonl"
    try:
        s = f.stat()
    except OSError:
        return run.metrics()
    return _metrics(str(run.path), s.st_mtime, s.st_size)


def runs_of(kind: str, state: str | None = "done") -> list[Run]:
    """The runs of ``kind`` (in ``state``; None: any) this session may see (app_pages/_identity.py)."""
    return [r for r in visible_runs() if r.kind == kind and (state is None or r.status.get("state") == state)]


def visible_runs() -> list[Run]:
    """Every run this session may see, newest first: all of them on a one-user server; on a shared
    one its identity's own (a teacher's: everyone's)."""
    return visible(list_runs(runs_dir()))


def newest_preview(run: Run) -> Path | None:
    folder = run.path / "images"
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("preview*.png"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def job_panel(run_id: str, key: str, show_curve: bool = True, show_preview: bool = True, live_media: bool = True) -> dict:
    """Progress (with ETA), message, error, loss curve, newest preview, cancel/resume for one run.

    ``live_media=False``: while the run is running, leave its curve and preview out (the page
    draws them in a slower fragment: a browser redraws a Plotly chart on every refresh of the
    fragment that holds it, and on a small CPU that slows the training). Returns the run's
    status dict (empty if the folder is gone).
    """
    mgr = manager()
    run = Run(Path(mgr.root) / run_id)
    job: Job | None = mgr.get(run_id)
    if not run.exists():
        st.warning(f"Run **{run_id}** was removed from disk while shown; nothing else was touched. Pick another run.")
        return {}
    if not may_see(run.owner):
        st.warning(f"Run **{run_id}** belongs to someone else; it is not shown.")
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
    if state in ("queued", "running") and not may_cancel(job.owner if job is not None else (run.owner if strict() else None)):
        st.caption("Started in another browser session or by another person: only its owner can cancel it.")
    elif state in ("queued", "running"):
        if st.button("Cancel", key=f"{key}-cancel-{run_id}"):
            try:
                mgr.cancel(run_id, owner=owner_key())
                st.toast(f"Cancelling {run_id}: it saves a checkpoint at its next step.")
            except LabError as exc:
                st.error(str(exc))
    elif state in RESUMABLE and run.kind in (CFG_KIND, CLS_KIND) and not may_resume(run.owner):
        st.caption("Started by someone else: only its owner can resume it.")  # a teacher reads it; the Study page says the same
    elif state in RESUMABLE and run.kind in (CFG_KIND, CLS_KIND):
        if st.button("Resume", key=f"{key}-resume-{run_id}"):
            try:
                mgr.resume(run_id, owner=resume_owner())
                st.toast(f"Resumed {run_id}")
            except LabError as exc:
                st.error(str(exc))
    latest = (job.latest_metrics if job else None) or {}
    if latest:
        shown = {k: v for k, v in latest.items() if isinstance(v, (int, float)) and k not in ("time",)}
        st.caption("latest: " + " · ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in list(shown.items())[:6]))
    if state == "running" and not live_media:
        return status  # the caller draws the curve and preview elsewhere, less often (see CURVE_EVERY_S)
    job_media(run, key, show_curve, show_preview, job)
    return status


def job_media(run: Run, key: str, show_curve: bool = True, show_preview: bool = True, job: Job | None = None) -> None:
    """A run's loss curve and newest preview, side by side."""
    metrics = run_metrics(run) if show_curve else None
    if metrics is not None and len(metrics) > 600:  # the curve's shape needs no more points; fewer is cheaper to send
        metrics = metrics.iloc[:: len(metrics) // 300 + 1]
    has_curve = metrics is not None and not metrics.empty and "step" in metrics and any("loss" in c for c in metrics.columns)
    prev = None
    if show_preview:
        prev = (job.latest_preview if job and job.latest_preview and job.latest_preview.exists() else None) or newest_preview(run)
    if has_curve or prev is not None:
        left, right = st.columns([3, 2]) if has_curve and prev is not None else (st.container(), st.container())
        if has_curve:
            left.plotly_chart(viz.loss_figure(metrics), key=f"{key}-loss-{run.id}", width="stretch", config=chart_config(f"loss-{run.id}"))
        if prev is not None:
            right.image(str(prev), caption=f"newest preview: {prev.name}", width="stretch" if has_curve else 360)
            grid_download(_png_array(str(prev)), f"{run.id}-{prev.stem}", key=f"{key}-png-{run.id}", where=right)


def _png_array(path: str):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def sidebar_jobs() -> None:
    """Running and queued jobs, refreshed on every page."""
    every = poll_every()

    @st.fragment(run_every=every)
    def _jobs() -> None:
        if poll_every() != every:
            st.rerun()  # the whole page, so every polled fragment takes the interval that fits the jobs now
        active = [j for j in manager().active() if may_see(j.owner)]
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
