"""Study page: start a study, watch its cells finish, its verdict table grow and its fills' samples.

The study runs as one job of the job manager (kind "study"); this page only reads its folder
(core.study.progress) and polls while the study is queued or running.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.study import progress as sp
from core.serving import workspace
from core.errors import LabError
from core.study.config import KIND
from core.study.presets import PRESET_INFO, PRESETS, preset, preset_label, preset_time
from core.jobs import RESUMABLE
from core.store.runs import ACTIVE, Run
from core.study.start import BOUNDS, for_shared_server, from_study_file, from_upload, ready, study_files, with_seeds
from app_pages._dataset import data_cfg
from app_pages._forms import confirm_pending, submit_job
from app_pages._jobs import runs_of
from app_pages._manager import manager
from app_pages._polling import poll_every
from app_pages._identity import may_cancel, may_resume, owner_key, resume_owner, strict
from app_pages._serving import number

st.title("Study")
mgr = manager()
wanted = st.query_params.get("study")  # read before data_cfg() puts the dataset's parameters in the URL
own_data = data_cfg()
SOURCES = ["preset", "file in studies/", "upload"]
STATE_COLORS = {sp.DONE: "#c7e9c0", sp.RUNNING: "#c6dbef", sp.FAILED: "#fcbba1", sp.UNAVAILABLE: "#e0e0e0",
                sp.CANCELLED: "#fdd0a2", sp.STOPPED: "#fdd0a2"}


def _started(job) -> None:
    if job is not None:
        st.session_state["study_pick"] = job.id
        st.success(f"Started study `{job.id}`. Its cells fill in below as they finish.")


# -- start ----------------------------------------------------------------------------------
with st.expander("Start a study", expanded=not runs_of(KIND, state=None)):
    c = st.columns([2, 3])
    source = c[0].radio("From", SOURCES, horizontal=True, key="study_source",
                        help="A preset, a study file shipped in the project's studies/ folder, or a TOML file of your own")
    cfg = None
    try:
        if source == SOURCES[0]:
            name = c[1].selectbox("Preset", list(PRESETS), key="study_preset", format_func=preset_label,
                                  help="; ".join(f"{k}: {v['about']}" for k, v in PRESET_INFO.items()))
            c[1].caption(preset_time(name))
            cfg = preset(name)
        elif source == SOURCES[1]:
            files = list(study_files())
            cfg = from_study_file(c[1].selectbox("Study file", files, key="study_file")) if files else None
        else:
            up = c[1].file_uploader("Study file (.toml)", type=["toml"], key="study_upload",
                                    help="The format of studies/quick.toml; its data folder, if any, must be inside the server's data roots")
            cfg = from_upload(up.name, up.getvalue()) if up is not None else None
    except LabError as exc:
        st.error(str(exc))
    if cfg is not None:
        c = st.columns([1, 2, 1])
        n = number("Seeds", "study_seeds", min(len(cfg.seeds), BOUNDS["seeds"]), key=f"study_seeds_{source}_{cfg.name}", where=c[0],  # per study: its own seed count
                   help="Every cell runs once per seed; the CI needs at least 2")
        mine = c[1].checkbox("Use the dataset from the Dataset page", value=False, key="study_own",
                             help=f"instead of the study's own ({cfg.data.dataset}, profile {cfg.data.profile})")
        go = c[2].button("Start study", type="primary", key="study_go")
        st.caption(f"**{cfg.name}**: methods {', '.join(cfg.methods)}; classifiers {', '.join(cfg.classifiers)}; "
                   f"w = {', '.join(f'{w:g}' for w in cfg.cfg_ws)}; budget {cfg.budget}; "
                   + ("every seed on the same imbalanced subset" if cfg.fixed_subset else "each seed draws its own imbalanced subset")
                   + ". Bounds for a study started here: "
                   + ", ".join(f"{k} ≤ {v:,}" for k, v in BOUNDS.items()) + ".")
        if go:
            try:
                cfg = with_seeds(cfg, int(n))
                if mine:
                    cfg.data = own_data
                cfg = ready(cfg)
                if strict():
                    cfg, notes = for_shared_server(cfg)
                    for note in notes:
                        st.info(note)
                _started(submit_job(KIND, cfg.to_dict(), cfg.name, key="study_form"))
            except LabError as exc:
                st.error(str(exc))
    _started(confirm_pending("study_form"))

# -- which study --------------------------------------------------------------------------
studies = [r.id for r in runs_of(KIND, state=None)]
if not studies:
    st.info(f"No study yet. Start one above: the **quick** preset runs every method on digits in about {PRESET_INFO['quick']['minutes']} minutes on 2 CPU cores. "
            "Its plan appears here as a grid of cells that fill in as they finish, with the verdict table growing below.")
    st.stop()
if wanted in studies and st.session_state.get("_study_wanted") != wanted:
    st.session_state["study_pick"] = st.session_state["_study_wanted"] = wanted  # a link's choice, taken once
if st.session_state.get("study_pick") not in studies:
    st.session_state["study_pick"] = studies[0]
pick = st.selectbox("Study", studies, key="study_pick", help="newest first; the folder name is its start time and name")
st.query_params["study"] = pick
run = Run(mgr.root / pick)
try:
    cfg = sp.study_config(run.path)
except LabError as exc:
    st.error(f"This study's config cannot be read: {exc}")
    st.stop()
link = {**workspace.to_params(cfg.data), "study": pick}
st.page_link("app_pages/results.py", label="This study in Results", icon=":material/bar_chart:", query_params=link)


def _state() -> str:
    job = mgr.get(pick)
    return job.state if job is not None else run.status.get("state", "?")


@st.cache_data(max_entries=8, show_spinner=False)
def _rows(path: str, signature: tuple) -> tuple[pd.DataFrame, list[str]]:
    """The verdict table, recomputed only when a cell's state changed."""
    rows, notes = sp.progress_rows(path, sp.study_config(path), dict(signature_cells(signature)))
    return sp.verdict_frame(rows), notes


def signature_cells(signature: tuple) -> list[tuple[str, dict]]:
    return [(cid, {"kind": kind, "label": label, "state": state, "error": err}) for cid, kind, label, state, err in signature]


def _colour(state: str) -> str:
    return f"background-color: {STATE_COLORS[state]}" if state in STATE_COLORS else ""


def controls(state: str) -> None:
    c = st.columns([1, 1, 4])
    job = mgr.get(pick)
    if state in ACTIVE and not may_cancel(job.owner if job is not None else run.owner):
        c[0].caption("Started by someone else: only its owner can cancel it.")
    elif state in ACTIVE:
        if c[0].button("Cancel study", key="study_cancel"):
            try:
                if mgr.cancel(pick, owner=owner_key()):
                    st.toast("Cancelling: the running cell stops at its next step; finished cells are kept.")
                else:
                    st.warning("This study is not running in this server; nothing to cancel.")
            except LabError as exc:
                st.error(str(exc))
    elif state in RESUMABLE and not may_resume(run.owner):
        c[0].caption("Started by someone else: only its owner can resume it.")
    elif state in RESUMABLE:
        if c[0].button("Resume study", key="study_resume", help="finished cells are kept; failed, cancelled and unfinished ones run"):
            try:
                mgr.resume(pick, owner=resume_owner())
                st.rerun()  # the whole page: it polls again while the study runs
            except LabError as exc:
                st.error(str(exc))


LIVE = _state() in ACTIVE
FILLS = sp.fills_on_disk(run.path, cfg)
st.session_state["_study_seen"] = (pick, LIVE, FILLS)


@st.fragment(run_every=poll_every() if LIVE else None)
def progress() -> None:
    state = _state()
    if st.session_state.get("_study_seen") != (pick, state in ACTIVE, sp.fills_on_disk(run.path, cfg)):
        st.rerun()  # the study started or stopped, or a fill was saved: the whole page (the sample strip is outside)
    status = run.status
    cells = sp.cell_states(run.path, cfg, active=state in ACTIVE)
    done = sp.counts_by_state(cells)[sp.DONE]
    st.progress(done / max(1, len(cells)), text=f"**{state}** · {sp.progress_text(cells)}")
    if status.get("message"):
        st.caption(status["message"])
    if state == "failed" and status.get("error"):
        st.error(status["error"])
    controls(state)
    st.markdown("**Plan**: one row per step, one column per seed")
    grid = sp.cell_grid(cells, cfg.seeds)
    st.table(grid.style.map(_colour))
    signature = tuple((cid, c["kind"], c["label"], c["state"], c["error"]) for cid, c in cells.items())
    frame, notes = _rows(str(run.path), signature)
    st.markdown("**Verdicts so far** (rows aggregate the finished cells; a partial row says how many seeds it has)")
    if frame.empty or not (frame["progress"] != "waiting").any():
        st.caption("No classifier has finished yet: the first rows appear when the first classifier cells are done.")
    st.dataframe(frame, hide_index=True, width="stretch", key="study_verdicts",
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in frame.columns
                                if c in ("accuracy", "macro-F1", "minority-F1") or c.endswith(("Δ accuracy", "Δ minority F1"))})
    st.caption(" ".join(notes))


progress()

# -- samples of the fills ---------------------------------------------------------------------
@st.cache_data(max_entries=8, show_spinner="Finding each image's nearest training image…")
def _strip(path: str, seed: int, fills: tuple[str, ...], mtimes: tuple[float, ...]):
    return sp.sample_strip(path, sp.study_config(path), seed, list(fills))


if FILLS:
    st.subheader("Samples of the fills")
    seeds = list(FILLS)
    seed = st.selectbox("Seed", seeds, key="study_strip_seed") if len(seeds) > 1 else seeds[0]
    fills = FILLS.get(seed, FILLS[seeds[0]])
    try:
        grid, names, neighbours = _strip(str(run.path), seed, tuple(fills), sp.fill_stamp(run.path, seed, fills))
    except (LabError, OSError, ValueError) as exc:
        st.warning(f"The samples cannot be shown: {exc}")
    else:
        if names:
            st.image(grid, clamp=True)
            st.caption("For each fill, one generated image per class (the most-filled classes first); below it, that image's nearest "
                       "training image of any class (pixel distance; mirrored images too for RGB data, as the near-copy rate searches). "
                       "The column label is the generated image's class; the nearest image's class:")
            st.markdown("\n".join(f"- {line}" for line in neighbours))
elif LIVE:
    st.caption("Samples of the fills appear here once the first fill is saved.")
