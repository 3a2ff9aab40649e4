"""Train page: launch CFG diffusion and classifier training as background jobs; watch, cancel, resume."""

from __future__ import annotations

import dataclasses

import streamlit as st

from core.data.loading import DataConfig
from core.errors import LabError
from core.jobs.runners import BALANCED, CFG_KIND, CLS_KIND
from app_pages._dataset import data_cfg, dataset_caption
from app_pages._forms import confirm_pending, form_memory, optional, remember_form, submit_job
from app_pages._jobs import job_media, run_row, job_panel, runs_of, visible_runs
from app_pages._manager import manager
from app_pages._polling import curve_every, poll_every
from app_pages._serving import number

st.title("Train")
st.markdown(dataset_caption())
cfg_data = data_cfg()
mgr = manager()

SAMPLERS = ["dpm", "ddim", "ddpm"]
# The classifier's budget. Steps by default: every method then gets the same optimizer steps at the
# same batch size, so a bigger (filled) set does not win by training longer (issue 20: with epochs,
# `none` for 3 epochs trained 9 steps and `oversample` 33).
BUDGETS = {"optimizer steps (fair across methods)": "steps", "epochs (the paper's: fewer steps for smaller sets)": "epochs"}
DEFAULT_CLS_STEPS = 300
WARMUP_SHARE = 0.05  # of the steps, under the steps budget
TRACKERS = ["off", "tensorboard", "mlflow"]  # core.store.tracking: metrics rows also go there
TRACKER_HELP = "TensorBoard: event files in the run folder (`tensorboard --logdir runs`); MLflow: MLFLOW_TRACKING_URI or runs/mlruns (`pip install mlflow-skinny`)"


def _tracker(prefix: str, d: dict):
    """The "also log metrics to" choice of a form (off by default)."""
    i = TRACKERS.index(d["log_with"]) if d.get("log_with") in TRACKERS else 0
    return st.selectbox("Also log metrics to", TRACKERS, index=i, key=f"{prefix}_log_with", help=TRACKER_HELP)


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def _build(cls, **kw):
    """The config dataclass from the form, keeping only fields it has (validated if it can)."""
    names = {f.name for f in dataclasses.fields(cls)}
    cfg = cls(**{k: v for k, v in kw.items() if k in names})
    if hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


def _started(job) -> None:
    if job is None:
        return
    st.session_state["train_focus"] = job.id
    # active() holds queued and running jobs only: cancelled ones are not counted
    busy = len([j for j in mgr.active() if j.device == job.device and j.lane == job.lane and j.id != job.id and j.submitted <= job.submitted])
    st.success(f"Started {job.kind} job `{job.id}`" + (f" (queued behind {busy} job(s) on {job.device})" if busy > 0 else f" on {job.device}"))


def _submit(kind: str, config: dict, name: str, key: str) -> None:
    _started(submit_job(kind, config, name, key))


tab_cfg, tab_cls = st.tabs(["Diffusion model (CFG)", "Classifier"])

with tab_cfg:
    mod, why = optional("core.train.cfg_unet")
    if mod is None:
        st.warning(f"CFG training is not available yet: {why}")
    else:
        d = {**_defaults(mod.CFGTrainConfig), **form_memory("cfg_form")}
        unet, _ = optional("core.nets.unet")
        presets = list(getattr(unet, "PRESETS", None) or getattr(mod, "PRESET_LR", None) or ["tiny"])
        with st.form("cfg_form", enter_to_submit=False):  # Enter in a field must not start a job
            c = st.columns(3)
            preset = c[0].selectbox("Preset (model size)", presets, index=presets.index(d.get("preset", presets[0])) if d.get("preset") in presets else 0, key="cfg_preset")
            steps = number("Training steps", "cfg_steps", int(d.get("steps", 2000)), key="cfg_steps", where=c[1])
            batch = number("Batch size", "batch_size", int(d.get("batch_size", 64)), key="cfg_batch", where=c[2])
            c = st.columns(3)
            p_uncond = c[0].slider("p_uncond (label dropped, for CFG)", 0.0, 0.5, float(d.get("p_uncond", 0.1)), 0.05, key="cfg_puncond")
            sampler = c[1].selectbox("Preview sampler", SAMPLERS, index=SAMPLERS.index(d.get("preview_sampler", "dpm")) if d.get("preview_sampler") in SAMPLERS else 0, key="cfg_sampler")
            pv_steps = number("Preview sampling steps", "preview_steps", int(d.get("preview_steps", 25)), key="cfg_pv_steps", where=c[2])
            c = st.columns(3)
            preview_every = number("Preview every (steps; 0 = at the end)", "preview_every", int(500 if d.get("preview_every") is None else d["preview_every"]), key="cfg_pv_every", where=c[0])
            lr = number("Learning rate (empty: the preset's)", "cfg_lr", d.get("lr"), format="%.5f", key="cfg_lr", where=c[1])
            seed = number("Seed", "seed", int(d.get("seed", 0)), key="cfg_seed", where=c[2])
            uniform = st.checkbox("Sample classes uniformly (instead of by their imbalanced frequency)", bool(d.get("uniform_classes", False)), key="cfg_uniform")
            c = st.columns(2)
            cbdm_tau = number("CBDM τ (class-balancing regulariser, Qin et al. 2023; 0 = off)", "cbdm_tau", float(d.get("cbdm_tau", 0.0)), step=0.1,
                                         where=c[0], key="cfg_cbdm_tau", help="pulls the model's prediction for a class towards its prediction for "
                                         "another class drawn from the target distribution; costs one more forward pass per step (about 1.33×)")
            targets = list(mod.CBDM_TARGETS)
            cbdm_target = c[1].selectbox("CBDM target classes", targets, index=targets.index(d["cbdm_target"]) if d.get("cbdm_target") in targets else 0,
                                         key="cfg_cbdm_target", help="train: drawn by the training set's class frequencies; uniform: every class equally")
            log_with = _tracker("cfg", d)
            go = st.form_submit_button("Start CFG training", type="primary")
        if go:
            values = dict(preset=preset, steps=int(steps), batch_size=int(batch), p_uncond=float(p_uncond), preview_sampler=sampler,
                          preview_steps=int(pv_steps), preview_every=int(preview_every), lr=None if lr is None else float(lr),
                          seed=int(seed), uniform_classes=bool(uniform), cbdm_tau=float(cbdm_tau), cbdm_target=cbdm_target)
            values["log_with"] = None if log_with == "off" else log_with
            remember_form("cfg_form", values)
            try:
                # the job keeps a copy of this tab's data config, taken now
                cfg = _build(mod.CFGTrainConfig, data=cfg_data, **values)
                _submit(CFG_KIND, cfg.to_dict(), f"{cfg_data.dataset}-{preset}", "cfg_form")
            except LabError as exc:
                st.error(str(exc))
        _started(confirm_pending("cfg_form"))

with tab_cls:
    mod, why = optional("core.train.classifier")
    if mod is None:
        st.warning(f"Classifier training is not available yet: {why}")
    else:
        d = {**_defaults(mod.ClassifierConfig), **form_memory("cls_form")}
        archs = list(getattr(mod, "ARCHS", ["small", "resnet18", "resnet50"]))
        # Training-set choices: a baseline balanced on the fly, or a finished "balance" job's set.
        sets = {"imbalanced (no balancing)": ("none", {}, None), "oversample": ("oversample", {}, None),
                "Mixup (λ = 0.6)": ("mixup", {"lam": 0.6}, None), "CutMix (λ = 0.6)": ("cutmix", {"lam": 0.6}, None)}
        for r in runs_of("balance"):
            rc = r.config
            # same data config (compared as DataConfig, so a saved dict missing a default still matches)
            if rc.get("data") and DataConfig.from_dict(rc["data"]) == cfg_data and (r.path / BALANCED).exists():
                sets[f"balanced set {r.id} ({rc.get('method')})"] = (rc.get("method"), rc.get("params") or {}, r.id)
        has_loss = "loss" in {f.name for f in dataclasses.fields(mod.ClassifierConfig)}
        losses = list(getattr(mod, "LOSSES", None) or ["ce", "reweight", "logit-adjust"])
        with st.form("cls_form", enter_to_submit=False):  # Enter in a field must not start a job
            c = st.columns(3)
            arch = c[0].selectbox("Classifier", archs, index=archs.index(d["arch"]) if d.get("arch") in archs else 0, key="cls_arch")
            budget_names = list(BUDGETS)
            budget = c[1].radio("Budget", budget_names, index=list(BUDGETS.values()).index(d["budget"]) if d.get("budget") in BUDGETS.values() else 0,
                                key="cls_budget", help="steps: every method trains the same optimizer steps at the same batch size; "
                                                       "epochs: the same passes over each training set, so a filled set trains longer")
            batch = number("Batch size", "batch_size", int(d.get("batch_size", 128)), key="cls_batch", where=c[2])
            c = st.columns(3)
            cls_steps = number("Optimizer steps (budget: steps)", "cls_steps", int(d.get("steps") or DEFAULT_CLS_STEPS), key="cls_steps", where=c[0])
            epochs = number("Epochs (budget: epochs)", "epochs", int(d.get("epochs", 30)), key="cls_epochs", where=c[1])
            seed = number("Seed", "seed", int(d.get("seed", 0)), key="cls_seed", where=c[2])
            c = st.columns(2)
            set_names = list(sets)
            choice = c[0].selectbox("Training set", set_names, index=set_names.index(d["set"]) if d.get("set") in set_names else 0, key="cls_set",
                                    help="Make more balanced sets on the Generate page (“balance the dataset”).")
            lr = number("Peak learning rate", "cls_lr", float(d.get("lr", 0.1)), format="%.4f", key="cls_lr", where=c[1])
            loss = None
            if has_loss:
                loss = st.selectbox("Loss", losses, index=losses.index(d["loss"]) if d.get("loss") in losses else 0, key="cls_loss",
                                    help="ce: plain cross-entropy; reweight: classes weighted by inverse frequency; "
                                         "logit-adjust: log class priors added to the logits (Menon et al. 2021)")
            log_with = _tracker("cls", d)
            go = st.form_submit_button("Start classifier training", type="primary")
        if go:
            method, params, set_run = sets[choice]
            by_steps = BUDGETS[budget] == "steps"
            # under a steps budget the warm-up is in steps too (5 % of them), so every training set warms up alike
            values = dict(arch=arch, epochs=int(epochs), steps=int(cls_steps) if by_steps else None,
                          warmup_steps=max(1, round(WARMUP_SHARE * int(cls_steps))) if by_steps else None, batch_size=int(batch), lr=float(lr),
                          seed=int(seed), **({"loss": loss} if has_loss else {}))
            values["log_with"] = None if log_with == "off" else log_with
            remember_form("cls_form", {**values, "steps": int(cls_steps), "budget": BUDGETS[budget], "set": choice})
            try:
                cfg = _build(mod.ClassifierConfig, data=cfg_data, **values)
                # how the training set is made: the classifier job fills it before training (core.generators.balance)
                config = {**cfg.to_dict(), "balance_method": method, "balance_params": params}
                if set_run:
                    config["train_set_run"] = set_run
                _submit(CLS_KIND, config, f"{arch}-{method}", "cls_form")
            except LabError as exc:
                st.error(str(exc))
        _started(confirm_pending("cls_form"))

st.divider()
st.subheader("Training jobs")


ACTIVE = ("queued", "running", "interrupted")


def _training_runs():
    return [r for r in visible_runs() if r.kind in (CFG_KIND, CLS_KIND)]


def _state(run) -> str | None:
    """A run's state as its panel shows it: the job manager's while it holds the job, else status.json.
    (status.json is written before the manager's record changes, so on its own it runs ahead.)"""
    job = mgr.get(run.id)
    return job.state if job is not None else run.status.get("state")


def _live_ids(runs) -> list[str]:
    """Runs whose panel refreshes: queued, running, and those a restart interrupted (with their Resume button)."""
    return [r.id for r in runs if _state(r) in ACTIVE][:6]


# What refreshes is kept small: on a small CPU every refresh of the page takes time from the
# training it shows (bench/app_jobs.py). The progress panels refresh every poll; the running
# curves every CURVE_EVERY_S; finished runs only when the page reruns (a job ending triggers one).
@st.fragment(run_every=poll_every())
def training_jobs() -> None:
    runs = _training_runs()
    live = _live_ids(runs)
    full_run = st.session_state.pop("_train_full_run", False)  # set just before the call below
    was, st.session_state["_train_live"] = st.session_state.get("_train_live"), live
    if not full_run and was != live:
        st.rerun()  # polled on its own, it saw a job start or end: the whole page, so the sections below are current
    for rid in live:
        with st.container(border=True):
            job_panel(rid, key="train", live_media=False)  # a running run's curve is drawn by live_curves()


@st.fragment(run_every=curve_every() if manager().active() else None)  # a job starting reruns the page (above)
def live_curves() -> None:
    """Loss curves and newest previews of the running trainings, redrawn every curve_every() s
    (the progress above refreshes every few seconds; redrawing a chart that often costs the
    training CPU on a small machine)."""
    running = [r for r in _training_runs() if _state(r) == "running"]
    if not running:
        return
    st.markdown(f"**Live loss curves** (redrawn every {curve_every():g} s)")
    for r in running:
        with st.container(border=True):
            st.caption(f"`{r.id}`")
            job_media(r, key="train-live", job=manager().get(r.id))


def finished_runs() -> None:
    """This tab's last run once it has ended (its result), then every other run: a table (state,
    trained steps, last message) and one run's panel on demand. Not polled."""
    runs = _training_runs()
    # the panels the fragment above drew in this same page run: a second look at the disk could
    # find a run just ended and draw its panel again (two "train-cancel-<id>" buttons)
    live = set(st.session_state.get("_train_live") or [])
    focus = st.session_state.get("train_focus")
    if not runs and not focus:
        st.caption("No training runs yet. Start one above; it runs in the background and keeps going if you close the tab.")
        return
    if focus and focus not in live:
        with st.container(border=True):
            job_panel(focus, key="train")
    others = [r for r in runs if r.id not in live and r.id != focus]
    if others:
        st.markdown("**All training runs** (newest first)")
        st.dataframe([run_row(r) for r in others], hide_index=True, width="stretch", key="train_runs_table")
        pick = st.selectbox("Show the details of", [r.id for r in others], key="train_older")
        with st.container(border=True):
            job_panel(pick, key="train-old")


st.session_state["_train_full_run"] = True
training_jobs()
live_curves()
finished_runs()
