"""Streamlit helpers shared by the pages: the job manager, the chosen dataset, job panels.

Only display and wiring live here; the work is done by ``core`` (jobs run in the job
manager's threads, never in the script thread).
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import astuple
from pathlib import Path

import streamlit as st

from core.data import disk
from core.data.imageset import LoadedDataset
from core.data.loading import DataConfig, load_dataset
from core.errors import LabError
from core.jobs.runners import CFG_KIND, CLS_KIND  # importing it registers the lab's job kinds with core.jobs
from core.jobs import INTERACTIVE_LANE, RESUMABLE, Job, JobManager, format_eta
from core.paths import runs_dir
from core.store.runs import Run, list_runs
from core.viz import figures as viz
from core.serving import workspace
from app_pages._export import chart_config, grid_download
from core.serving.server import JobLimits, data_dirs_in
from app_pages._serving import admission_check, admit_job, guard_data, session_id, shared_server, show_notes
from app_pages._identity import check_dir, may_cancel, may_resume, may_see, owner_key, resume_owner, strict, visible

DATA_KEY = "data_cfg"
# How often job panels refresh (seconds). Each refresh re-runs a fragment in the server's process
# and makes the browser re-render the page (about 0.2 s of a CPU core per refresh measured in
# headless Chromium on the 2-core machine, whatever the fragment holds), and on a small CPU both
# take time from a training on the same machine (bench/app_jobs.py measures it): 1 s while an
# interactive job (a preview, a small sweep) is queued or running, so its result shows at once;
# 10 s while only training-lane jobs run (their progress, ETA and latest loss; trainings last
# minutes to hours); 15 s when nothing runs (a job started in another tab shows up).
POLL_FAST_S = 1.0
POLL_S = 10.0
POLL_IDLE_S = 15.0
# A running job's loss curve and preview are redrawn this often (seconds), in their own fragment:
# the browser redraws a Plotly chart on every refresh of the fragment that holds it, the biggest
# cost of a refresh; the progress bar, step, ETA and latest loss still refresh every POLL_S.
CURVE_EVERY_S = 15.0
# With a class on one server every open tab polls, so the training loses a little to each of them
# (bench/app_load.py): past CROWD sessions seen in the last SEEN_S seconds the training-lane
# intervals (POLL_S, CURVE_EVERY_S) stretch by a factor 2 or 4, keeping the server's total refresh
# rate about that of CROWD sessions. The 1 s interval is only for a session's own interactive job.
CROWD = 2
SEEN_S = 60.0


# ------------------------------------------------------------------------ job manager
@st.cache_resource(show_spinner=False)
def _manager(root: str, limits: tuple[int, int, int]) -> JobManager:
    # every job records the browser session that started it, counts against its limits, and
    # has its data checked against the data roots and the memory budget (app_pages/_serving.py)
    # (the signed-in person on a server with a tokens file: app_pages/_identity.py)
    # memory and compute are admitted server-wide, counting the jobs already admitted (core.serving.admission)
    return JobManager(root=root, limits=JobLimits(*limits), owner_fn=owner_key, admit=admit_job, budget=admission_check)


def manager() -> JobManager:
    """The one JobManager of this server process (per runs folder), shared by every tab."""
    return _manager(str(runs_dir()), astuple(JobLimits.from_env()))


def paths_in_use() -> list[str]:
    """The data folders (and zips) of every job queued or running: the disk budget never evicts them."""
    return [d for j in manager().active() for d in data_dirs_in(j.run.config)]


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


# ------------------------------------------------------------------------ remembered forms
def form_memory(form: str) -> dict:
    """The values last submitted in ``form`` (this session, else the saved workspace), {} if none.

    Widgets use these as their defaults, so a form keeps the user's values after a page
    switch (Streamlit forgets a widget's state once it is not rendered) and across tabs.
    """
    mem = st.session_state.setdefault("_forms", {})
    if form not in mem:
        mem[form] = dict((_load_workspace().get("forms") or {}).get(form) or {})
    return mem[form]


def remember_form(form: str, values: dict) -> None:
    mem = st.session_state.setdefault("_forms", {})
    mem[form] = {**mem.get(form, {}), **values}
    if shared_server():
        return
    forms = dict(workspace.load().get("forms") or {})
    forms[form] = mem[form]
    workspace.save(forms=forms)


# ---------------------------------------------------------------------- guarded submit
def set_page(title: str) -> None:
    """app.py names the page being shown; jobs submitted from it record that page (core.store.provenance)."""
    st.session_state["_page"] = title


def page_name() -> str | None:
    return st.session_state.get("_page")


def submit_job(kind: str, config: dict, name: str, key: str, force: bool = False) -> Job | None:
    """Queue a job unless an identical one was submitted in the last minute and is still queued
    or running: then remember it as pending and let ``confirm_pending(key)`` ask the user."""
    mgr = manager()
    dup = None if force else workspace.recent_duplicate(mgr.jobs(), kind, config)
    if dup is not None:
        st.session_state[f"{key}_pending"] = {"kind": kind, "config": config, "name": name, "dup": dup.id,
                                              "ago": round(time.time() - dup.submitted)}
        return None
    try:
        job = mgr.submit(kind, config, name=name, page=page_name())
    except LabError as exc:
        st.error(str(exc))
        return None
    st.session_state.pop(f"{key}_pending", None)
    return job


def confirm_pending(key: str) -> Job | None:
    """The confirmation box for a duplicate submission of ``key``'s form; the job if confirmed."""
    pending = st.session_state.get(f"{key}_pending")
    if not pending:
        return None
    with st.container(border=True):
        st.warning(f"An identical {pending['kind']} job (`{pending['dup']}`) was submitted {pending['ago']} s ago and is still "
                   "queued or running. Start another copy anyway?")
        c = st.columns(2)
        yes = c[0].button("Start anyway", key=f"{key}_dup_yes")
        no = c[1].button("Don't start it", key=f"{key}_dup_no")
    if no:
        st.session_state.pop(f"{key}_pending", None)
        st.rerun()
    if yes:
        st.session_state.pop(f"{key}_pending", None)
        return submit_job(pending["kind"], pending["config"], pending["name"], key, force=True)
    return None


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


# --------------------------------------------------------------------------- run lists
@st.cache_resource
def _sessions_seen() -> dict:
    """Server-wide: browser session id -> when it last asked for a refresh interval."""
    return {}


def crowd_factor(now: float | None = None) -> int:
    """1, 2 or 4: how much the training-lane refresh intervals stretch for the sessions open now
    (seen within SEEN_S): up to CROWD sessions 1, up to 2·CROWD 2, more 4. Notes this session."""
    now = time.time() if now is None else now
    seen = _sessions_seen()
    me = session_id()
    if me is not None:
        seen[me] = now
    for sid, t in list(seen.items()):
        if now - t > SEEN_S:
            seen.pop(sid, None)
    n = len(seen)
    return 1 if n <= CROWD else 2 if n <= 2 * CROWD else 4


def poll_every() -> float:
    """The refresh interval that fits the jobs now queued or running (see POLL_S): fast only
    while this session's own interactive job runs; stretched by ``crowd_factor`` otherwise."""
    active = manager().active()
    factor = crowd_factor()
    if not active:
        return POLL_IDLE_S * factor
    me = owner_key()
    if any(j.lane == INTERACTIVE_LANE and j.owner in (None, me) for j in active):
        return POLL_FAST_S
    return POLL_S * factor


def curve_every() -> float:
    """How often the running curves are redrawn (CURVE_EVERY_S, stretched like poll_every)."""
    return CURVE_EVERY_S * crowd_factor()


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


# ------------------------------------------------------------------------ job panels
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
    elif state in RESUMABLE and run.kind in (CFG_KIND, CLS_KIND) and may_resume(run.owner):
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


def show_lab_error(exc: LabError) -> None:
    st.error(str(exc))


def json_block(d: dict) -> str:
    return json.dumps(d, indent=2, default=str)
