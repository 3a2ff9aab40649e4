"""Guidance explorer (teaching). Two tabs: a sweep (one class, fixed seeds, one grid row per
guidance weight w) and the denoising view (one image's trajectory per w, step by step)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core.settings import bounds
from core.viz import figures as viz, denoise as viz_denoise
from core.data.profiles import most_reduced_classes
from core.errors import ConfigError, LabError
from core.jobs.runners import SWEEP, TRAJECTORY, TRAJECTORY_MAX_WS, load_trajectory
from core.store.runs import Run
from core.serving.workspace import same_split
from app_pages._export import chart_config, grid_download
from app_pages._dataset import data_cfg, dataset_caption, prepared_or_stop
from app_pages._forms import confirm_pending, form_memory, remember_form, submit_job
from app_pages._jobs import cfg_model_options, fresh_model_id, job_panel, runs_of
from app_pages._manager import manager
from app_pages._polling import poll_every
from app_pages._serving import number

DEFAULT_WS = "0, 0.1, 0.5, 1, 2, 4, 7.5"
SAMPLERS = ["dpm", "ddim", "ddpm"]

st.title("Guidance explorer")
st.markdown(dataset_caption())
st.markdown(
    "Classifier-free guidance mixes the model's conditional and unconditional noise predictions "
    "(the paper's Eq. 8). **w = 0** is plain conditional sampling; larger w pushes samples towards "
    "what makes the class recognisable, usually at the cost of variety. diffusers calls **1 + w** the `guidance_scale`."
)
st.latex(r"\tilde{\epsilon}_\theta(\mathbf{z}_\lambda, \mathbf{c}) = (1 + w)\,\epsilon_\theta(\mathbf{z}_\lambda, \mathbf{c}) - w\,\epsilon_\theta(\mathbf{z}_\lambda) \qquad \text{(Eq. 8)}")

cfg_data = data_cfg()
ds, train = prepared_or_stop(cfg_data)
mgr = manager()
# models trained on this page's data first (others marked with their profile); finished first, newest first;
# a cancelled/interrupted one only with a checkpoint, and labelled so
models = cfg_model_options(cfg_data)
own_models = [(lb, r) for lb, r in models if same_split(r.config.get("data") or {}, cfg_data)]


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ConfigError(f"'{text}' is not a comma-separated list of numbers.", f"Type {what} like {DEFAULT_WS}.")
    if not vals:
        raise ConfigError(f"No {what} given.", f"Type at least one, e.g. {DEFAULT_WS}.")
    return vals


def shown_job(kind: str, state_key: str, panel_key: str, filename: str):
    """The job this tab shows: the one started here, else the newest of ``kind`` on this dataset.
    Draws its status panel; (run, status, result file) once the file exists, else None."""
    rid = st.session_state.get(state_key) or next((r.id for r in runs_of(kind, state=None)
                                                   if (r.config.get("data") or {}).get("dataset") == cfg_data.dataset), None)
    if not rid:
        return None
    status = job_panel(rid, key=panel_key, show_curve=False, show_preview=False)
    run = Run(Path(mgr.root) / rid)
    f = run.path / filename
    return (run, status, f) if f.exists() else None


sweep_tab, denoise_tab = st.tabs(["Sweep over w", "Denoising, step by step"])
with sweep_tab:
    if not models:
        st.info(f"No trained CFG model for **{cfg_data.dataset}** yet. Train one on the **Train** page (the tiny preset takes a few minutes on a CPU), then come back.")
    else:
        minority = most_reduced_classes(train.counts(), ds.train.counts())
        mem = form_memory("gd_form")
        ids = [r.id for _, r in models]
        # a model that finished since this page was last shown wins over the one used last
        fresh = fresh_model_id("guidance", own_models, mem.get("saved_at"))
        if fresh:
            st.session_state.pop("gd_model", None)
        remembered = fresh or mem.get("model")
        labels = dict((r.id, label) for label, r in models)
        classes = list(range(len(ds.classes)))
        with st.form("guidance_form", enter_to_submit=False):  # Enter in a field must not start a sweep
            # the model gets a full-width row: a label like "⚠ CANCELLED, 7 of 250 steps" must never be cut off
            model = st.selectbox("CFG model", ids, index=ids.index(remembered) if remembered in ids else 0,
                                 format_func=labels.get, key="gd_model")
            c = st.columns(2)
            cls_default = mem["class"] if mem.get("class") in classes else (minority[0] if minority else 0)
            cls = c[0].selectbox("Class", classes, index=cls_default, format_func=lambda i: ds.classes[i], key="gd_class")
            n_seeds = number("Seeds (columns)", "guidance_seeds", int(mem.get("seeds", 6)), key="gd_seeds", where=c[1])
            ws_text = st.text_input("w values (rows; the paper's w, guidance_scale = 1 + w)", mem.get("ws", DEFAULT_WS), key="gd_ws",
                                    help=bounds.help_text("w", f"Comma-separated, at most {bounds.MAX_WS} values"))
            c = st.columns(3)
            sampler = c[0].selectbox("Sampler", SAMPLERS, index=SAMPLERS.index(mem["sampler"]) if mem.get("sampler") in SAMPLERS else 0, key="gd_sampler")
            steps = number("Sampling steps", "sampling_steps", int(mem.get("steps", 25)), key="gd_steps", where=c[1])
            measure = number("Images per w for the curves (0 = grid only)", "measure_n", int(mem.get("measure", 32)), key="gd_measure", where=c[2],
                                        help="class consistency and diversity are scored by the judge CNN trained on the real balanced data; "
                                             "near-copy rate and precision/recall against real images the model never saw")
            go = st.form_submit_button("Run the sweep", type="primary")
        job = None
        if go:
            remember_form("gd_form", {"model": model, "saved_at": time.time(), "class": int(cls), "seeds": int(n_seeds), "ws": ws_text, "sampler": sampler,
                                      "steps": int(steps), "measure": int(measure)})
            try:
                ws = _floats(ws_text, "w values")
                if any(w < 0 for w in ws):
                    raise ConfigError("w must be >= 0 (w = 0 is plain conditional sampling).", "Remove the negative values.")
                bounds.check_values("w", ws, "w values", bounds.MAX_WS)
                config = {"data": cfg_data.to_dict(), "cfg_run": model, "class_idx": int(cls), "ws": ws, "seeds": list(range(int(n_seeds))),
                          "sampler": sampler, "steps": int(steps), "measure_n": int(measure)}
                job = submit_job("guidance", config, name=f"class{cls}", key="gd_form")
            except LabError as exc:
                st.error(str(exc))
        job = job or confirm_pending("gd_form")
        if job is not None:
            st.session_state["gd_job"] = job.id


    @st.fragment(run_every=poll_every())
    def sweep_view() -> None:
        shown = shown_job("guidance", "gd_job", "gd", SWEEP)
        if shown is None:
            return
        run, status, f = shown
        rid = run.id
        grid = np.load(f)
        c = run.config
        st.caption(f"class **{ds.classes[c['class_idx']]}**, seeds {c['seeds']} (columns), sampler {c.get('sampler')}, {c.get('steps')} steps")
        for w, row in zip(c["ws"], grid):
            cols = st.columns([1, 6])
            cols[0].markdown(f"w = **{w:g}**  \nscale {1 + w:g}")
            cols[1].image(viz.image_grid(row, ncol=len(row), scale=viz.auto_scale(row.shape[-1], 96)), clamp=True)
        grid_download(viz.labelled_grid(list(grid), [f"w={w:g}" for w in c["ws"]], [f"seed {s}" for s in c["seeds"]], row_title="w", col_title="seeds"),
                      f"guidance-{ds.classes[c['class_idx']]}-{rid}", key=f"gd_png_{rid}")
        metrics = run.metrics()
        if status.get("state") == "done" and not metrics.empty and "w" in metrics:
            cols = st.columns(2)
            cols[0].plotly_chart(viz.guidance_curves(metrics), key=f"gd_curves_{rid}", width="stretch", config=chart_config("guidance-curves"))
            cols[0].caption("**Class consistency**: share the judge CNN assigns to the class asked for. "
                            "**Diversity**: mean pairwise distance of judge features (0 = all the same image).")
            if "near_copy_rate" in metrics:
                cols[1].plotly_chart(viz.novelty_curves(metrics), key=f"gd_novelty_{rid}", width="stretch", config=chart_config("guidance-novelty"))
                feats = next((f for f in metrics.get("features", []) if isinstance(f, str)), "judge CNN features")
                n_train = metrics["n_train"].iloc[0] if "n_train" in metrics else "?"
                cols[1].caption(f"**Near-copy rate**: share of images closer (in pixels) to one of the class's {n_train} training images than 95% "
                                "of real images the model never saw are — high means the model copies instead of generating. "
                                "**Precision**: how real they look; **recall**: how much of the real variety they cover "
                                f"(k-NN manifolds on {feats}, against held-out real images).")
            shown = [k for k in ["w", "guidance_scale", "class_consistency", "diversity", "near_copy_rate", "median_nn_relative", "precision", "recall", "n"] if k in metrics]
            st.dataframe(pd.DataFrame(metrics)[shown], hide_index=True)


    sweep_view()


# --------------------------------------------------------------------------- denoising view
DEFAULT_DENOISE_WS = "0, 2, 7.5"


@st.cache_data(max_entries=8, show_spinner=False)
def _trajectory(path: str, mtime: float) -> dict:
    return load_trajectory(path)


@st.fragment(run_every=poll_every())
def denoise_view() -> None:
    """The saved trajectory of the chosen (or newest) trajectory job: only read and displayed."""
    shown = shown_job("trajectory", "dn_job", "dn", TRAJECTORY)
    if shown is None:
        return
    run, status, f = shown
    rid = run.id
    traj = _trajectory(str(f), f.stat().st_mtime)
    c = run.config
    ws, S = [float(w) for w in traj["ws"]], len(traj["timesteps"])
    name = ds.classes[c["class_idx"]] if c["class_idx"] < len(ds.classes) else c["class_idx"]
    st.caption(f"class **{name}**, seed {c.get('seed', 0)}, sampler {c.get('sampler')}, {S} steps, model `{c.get('cfg_run')}`. "
               "Every column starts from the same noise x_T"
               + (" and draws the same noise at each step" if c.get("sampler") == "ddpm" else "") + ": only guidance differs.")
    step = st.slider("Sampler step (drag to scrub: noisy → clean)", 1, S, S if status.get("state") == "done" else 1, key=f"dn_step_{rid}") - 1
    st.markdown(f"**{viz_denoise.step_label(traj, step)}**")
    cols = st.columns(len(ws))
    for k, (w, col) in enumerate(zip(ws, cols)):
        imgs = viz_denoise.step_images(traj, k, step)
        col.markdown(f"w = **{w:g}** · guidance_scale {1 + w:g}")
        col.image([imgs["x_t"], imgs["x0_hat"]], caption=["x_t", "x̂₀ (predicted clean image)"])
        col.image([imgs["eps_cond"], imgs["eps_uncond"], imgs["eps_guided"]], caption=["ε(x_t, c)", "ε(x_t)", "ε̃ (guided)"])
        col.caption(f"‖w·(ε(x_t,c) − ε(x_t))‖ = {float(traj['guidance_norm'][k, step]):.3f}")
    st.caption(r"x̂₀ = (x_t − √(1−ᾱ_t)·ε̃) / √ᾱ_t (Ho et al. 2020, Eq. 15). "
               f"ε images share one scale, ±{viz_denoise.EPS_RANGE:g} (grey = 0), so a stronger ε̃ looks more saturated.")
    st.plotly_chart(viz_denoise.guidance_norm_figure(traj, step), key=f"dn_norm_{rid}", width="stretch", config=chart_config("guidance-norm"))
    with st.expander("▶ Play x_t and x̂₀ through every step (plays in the browser)"):
        st.plotly_chart(viz_denoise.trajectory_animation(traj), key=f"dn_play_{rid}", width="stretch", config=chart_config("denoising"))


with denoise_tab:
    st.markdown("Follow **one** image from noise to picture, once per value of w, side by side. Each step shows the noisy "
                "x_t, the clean image x̂₀ the model predicts from it, and how guidance builds ε̃ from the conditional "
                "ε(x_t, c) and the unconditional ε(x_t). The trajectory is computed once; the slider only shows saved steps.")
    if not models:
        st.info(f"No trained CFG model for **{cfg_data.dataset}** yet. Train one on the **Train** page (the tiny preset takes a few minutes on a CPU), then come back.")
    else:
        dmem = form_memory("dn_form")
        d_ids = [r.id for _, r in models]
        d_fresh = fresh_model_id("denoise", own_models, dmem.get("saved_at"))
        if d_fresh:
            st.session_state.pop("dn_model", None)
        d_remembered = d_fresh or dmem.get("model")
        d_labels = dict((r.id, label) for label, r in models)
        d_classes = list(range(len(ds.classes)))
        d_minority = most_reduced_classes(train.counts(), ds.train.counts())
        with st.form("denoise_form", enter_to_submit=False):
            d_model = st.selectbox("CFG model", d_ids, index=d_ids.index(d_remembered) if d_remembered in d_ids else 0,
                                   format_func=d_labels.get, key="dn_model")
            c = st.columns(3)
            d_cls = c[0].selectbox("Class", d_classes, index=dmem["class"] if dmem.get("class") in d_classes else (d_minority[0] if d_minority else 0),
                                   format_func=lambda i: ds.classes[i], key="dn_class")
            d_seed = number("Seed (the starting noise x_T)", "seed", int(dmem.get("seed", 0)), key="dn_seed", where=c[1])
            d_ws = c[2].text_input("2 or 3 values of w (columns)", dmem.get("ws", DEFAULT_DENOISE_WS), key="dn_ws",
                                   help=bounds.help_text("w", "Comma-separated, 2 or 3 values"))
            c = st.columns(2)
            d_sampler = c[0].selectbox("Sampler", SAMPLERS, index=SAMPLERS.index(dmem["sampler"]) if dmem.get("sampler") in SAMPLERS else 0,
                                       key="dn_sampler", help="ddpm is stochastic: every column then draws the same noise at each step")
            d_steps = number("Sampling steps", "trajectory_steps", int(dmem.get("steps", 25)), key="dn_steps", where=c[1])
            d_go = st.form_submit_button("Compute the trajectory", type="primary")
        d_job = None
        if d_go:
            remember_form("dn_form", {"model": d_model, "saved_at": time.time(), "class": int(d_cls), "seed": int(d_seed), "ws": d_ws, "sampler": d_sampler, "steps": int(d_steps)})
            try:
                ws = _floats(d_ws, "w values")
                if not 2 <= len(ws) <= TRAJECTORY_MAX_WS:
                    raise ConfigError(f"The denoising view compares 2 or 3 values of w; you gave {len(ws)}.", "Type two or three, e.g. 0, 2, 7.5.")
                if any(w < 0 for w in ws):
                    raise ConfigError("w must be >= 0 (w = 0 is plain conditional sampling).", "Remove the negative values.")
                config = {"data": cfg_data.to_dict(), "cfg_run": d_model, "class_idx": int(d_cls), "ws": ws, "seed": int(d_seed),
                          "sampler": d_sampler, "steps": int(d_steps)}
                d_job = submit_job("trajectory", config, name=f"class{d_cls}-seed{d_seed}", key="dn_form")
            except LabError as exc:
                st.error(str(exc))
        d_job = d_job or confirm_pending("dn_form")
        if d_job is not None:
            st.session_state["dn_job"] = d_job.id
    denoise_view()
