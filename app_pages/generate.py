"""Generate page: pick a generator, preview its images per class beside real ones, download, balance."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import streamlit as st

from core.settings import bounds
from core.viz import figures as viz
from core.data.profiles import most_reduced_classes
from core.errors import LabError
from core.jobs.runners import BALANCED, GENERATED, export_zip, load_imageset
from core.store.runs import Run
from app_pages._export import chart_config, grid_download
from core.serving.workspace import same_split
from app_pages._dataset import data_cfg, dataset_caption, prepared_or_stop
from app_pages._forms import form_memory, optional, page_name, remember_form
from app_pages._jobs import cfg_model_options, fresh_model_id, job_panel, runs_of
from app_pages._manager import manager
from app_pages._polling import poll_every
from app_pages._serving import number

st.title("Generate")
st.markdown(dataset_caption())
cfg_data = data_cfg()
ds, train = prepared_or_stop(cfg_data)
mgr = manager()
SAMPLERS = ["dpm", "ddim", "ddpm"]

# -- which generators exist ------------------------------------------------------------
options: dict[str, tuple[str, dict]] = {}
# models trained on this page's data first (others marked with their profile); finished first, newest first;
# a cancelled/interrupted one only with a checkpoint, and labelled so
models = cfg_model_options(cfg_data)
for label, r in models:
    options[f"CFG model {label}"] = ("cfg", {"run_dir": str(r.path)})
sd_mod, sd_why = optional("core.generators.sd")
sd_note = None
if sd_mod is not None:
    try:
        ok, sd_note = sd_mod.sd_available(getattr(sd_mod, "DEFAULT_MODEL", "stable-diffusion-v1-5/stable-diffusion-v1-5"))
    except Exception as exc:  # a broken local copy must not take the page down
        ok, sd_note = False, f"{type(exc).__name__}: {exc}"
else:
    ok, sd_note = False, sd_why
# Baselines before Stable Diffusion: they always work, while SD may first need a multi-GB download.
options.update({"Mixup (two real images, λ)": ("mixup", {}), "CutMix (a box from another real image)": ("cutmix", {}), "Oversample (copies of real images)": ("oversample", {})})
if ok:
    downloads = sd_note and sd_note.startswith("will be downloaded")
    options["Stable Diffusion (pretrained, prompted with the class name" + ("; downloads on first use)" if downloads else ")")] = ("sd", {})

mem = form_memory("gen_form")
# a model that finished since this page was last shown wins over the generator used last (e.g. Mixup)
fresh = fresh_model_id("generate", [(lb, r) for lb, r in models if same_split(r.config.get("data") or {}, cfg_data)], mem.get("saved_at"))
fresh_label = next((f"CFG model {lb}" for lb, r in models if r.id == fresh), None)
if fresh_label:
    st.session_state.pop("gen_choice", None)  # the box takes the index below, not the choice it kept
left, right = st.columns([1, 2])
with left:
    names = list(options)
    remembered = fresh_label or mem.get("generator")
    # the label is repeated below the box in full: a long "⚠ CANCELLED, 7 of 250 steps" must never be cut off
    label = st.selectbox("Generator", names, index=names.index(remembered) if remembered in names else 0, key="gen_choice")
    st.caption(label)
    if not any(m == "cfg" for m, _ in options.values()):
        st.caption("No trained CFG model for this dataset yet: train one on the **Train** page.")
    if sd_note and not any(m == "sd" for m, _ in options.values()):
        with st.expander("Stable Diffusion is not available: how to add it"):
            st.caption(sd_note)
    method, base_params = options[label]
    params = dict(base_params)
    minority = most_reduced_classes(train.counts(), ds.train.counts())
    classes = st.multiselect("Classes", list(range(len(ds.classes))), default=minority, format_func=lambda c: ds.classes[c], key="gen_classes")
    count = int(number("Images per class", "images_per_class", int(mem.get("count", 8)), key="gen_count"))
    if method in ("cfg", "sd"):
        w = float(number("Guidance weight w (paper's; 0 = plain conditional)", "w",
                           float(mem.get(f"w_{method}", 7.5 if method == "cfg" else 6.5)), step=0.1, key=f"gen_w_{method}"))
        st.markdown(f"guidance_scale = 1 + w = **{1 + w:g}** (diffusers' convention)")
        c = st.columns(2)
        if method == "cfg":
            params["sampler"] = c[0].selectbox("Sampler", SAMPLERS, key="gen_sampler")
        params["steps"] = int(number("Sampling steps", "sampling_steps", int(mem.get("steps", 25)), key="gen_steps", where=c[1]))
        params["w"] = w
    elif method in ("mixup", "cutmix"):
        params["lam"] = float(st.slider("λ (share of the first image)", 0.05, 0.95, 0.6, 0.05, key="gen_lam", help="the paper uses λ = 0.6"))
    last = st.session_state.get("gen_last_seed")
    c = st.columns([2, 2])
    if c[1].button("New seed", icon=":material/casino:", key="gen_new_seed"):
        st.session_state["gen_seed"] = random.randrange(2**31 - 1)
    reuse = c[1].checkbox(f"reuse last seed ({last})" if last is not None else "reuse last seed", value=False, disabled=last is None, key="gen_reuse")
    st.session_state.setdefault("gen_seed", 0)
    seed = int(c[0].number_input("Seed", 0, 2**31 - 1, key="gen_seed", help=bounds.help_text("seed")))
    if reuse and last is not None:
        seed = int(last)
    go = st.button("Generate preview", type="primary", key="gen_go", disabled=not classes, width="stretch")
    largest = max(train.counts())
    target = int(number(f"Balance: fill each class up to (0 = the largest class, {largest})", "fill_target",
                          int(mem.get("target", 0)), key="gen_target",
                          help="classes already at or above this count keep their real images and get none added"))
    bal = st.button("Balance the dataset with this generator", key="gen_balance", width="stretch",
                    help="fills every class up to the target with this generator, as a background job")

if go or bal:
    remember_form("gen_form", {"generator": label, "saved_at": time.time(), "count": count, "target": target, "steps": params.get("steps", mem.get("steps", 25)),
                               **({f"w_{method}": params["w"]} if "w" in params else {})})
STRIP = 4  # previews kept side by side
if go:
    try:
        job = mgr.submit("generate", {"data": cfg_data.to_dict(), "method": method, "params": params, "classes": [int(c) for c in classes],
                                      "count": count, "seed": seed}, name=method, page=page_name())
        st.session_state["gen_job"] = job.id
        st.session_state["gen_strip"] = [job.id, *[r for r in st.session_state.get("gen_strip", []) if r != job.id]][:STRIP]
        st.session_state["gen_last_seed"] = seed
    except LabError as exc:
        st.error(str(exc))
if bal:
    try:
        job = mgr.submit("balance", {"data": cfg_data.to_dict(), "method": method, "params": params, "target": target or None, "seed": seed},
                          name=method, page=page_name())
        st.session_state["bal_job"] = job.id
        st.session_state["gen_last_seed"] = seed
    except LabError as exc:
        st.error(str(exc))


@st.cache_data(max_entries=8, show_spinner=False)
def _zip(path: str, mtime: float) -> bytes:
    return export_zip(path)


def settings_label(config: dict) -> str:
    """What a preview was made with, in one line (method, w, sampler, steps, seed)."""
    p = config.get("params") or {}
    parts = [viz.method_label(config.get("method"), p)]
    if "run_dir" in p:
        parts.append(f"model {Path(p['run_dir']).name}")
    if "lam" in p:
        parts.append(f"λ {p['lam']:g}")
    if "sampler" in p:
        parts.append(f"{p['sampler']}, {p.get('steps')} steps")
    parts.append(f"seed {config.get('seed')}")
    return " · ".join(parts)


def nearest_training_images(run: Run, s) -> dict | None:
    """The nearest training image (same class, pixel space) of each preview image, per class:
    {class: uint8 (n, C, H, W)} in the preview's order, from issue 13's
    ``core.metrics.novelty.nearest_training``; None while it is not there or cannot compare
    these images (the view then shows real images of the class instead)."""
    import torch

    mod, _ = optional("core.metrics.novelty")
    fn = getattr(mod, "nearest_training", None) if mod else None
    if fn is None:
        return None
    try:
        found = fn(s, train)
    except (LabError, ValueError, RuntimeError):
        return None
    rows: dict[int, list] = {}
    blank = torch.full(tuple(s.images.shape[1:]), 255, dtype=torch.uint8)
    for i, d in enumerate(found):
        rows.setdefault(int(s.labels[i]), []).append(d.get("image") if d.get("image") is not None else blank)
    return {c: torch.stack(v) for c, v in rows.items()}


def preview_grid(run: Run, s, with_real: bool) -> tuple[np.ndarray, bool]:
    """Rows are classes (with the real or nearest training images above each), columns images."""
    n = min(12, max(len(s.of_class(c)) for c in sorted(set(s.labels.tolist()))))
    rows, labels = [], []
    nearest = nearest_training_images(run, s) if with_real else None
    for c in sorted(set(s.labels.tolist())):
        gen_c = s.of_class(c).images[:n]
        if with_real:
            near = nearest.get(c) if nearest is not None else None
            rows.append(near[:n] if near is not None else train.of_class(c).images[:n])
            labels.append(f"{ds.classes[c]}: {'nearest train' if near is not None else 'real'}")
        rows.append(gen_c)
        labels.append(f"{ds.classes[c]}{' (minority)' if c in minority else ''}")
    seed = run.config.get("seed")
    grid = viz.labelled_grid(rows, labels, [f"#{i + 1}" for i in range(n)], row_title="class", col_title=f"images (seed {seed})")
    return grid, nearest is not None


@st.cache_data(max_entries=16, show_spinner=False)
def _images(path: str, mtime: float):
    return load_imageset(path)


def _preview_set(run: Run):
    f = run.path / GENERATED
    return _images(str(f), f.stat().st_mtime)


def live_panel(rid: str, key: str) -> dict:
    """The job panel of ``rid``: polled while the job is queued/running, then a full rerun shows
    its result once, without polling (a finished page costs nothing while training runs)."""
    run = Run(Path(mgr.root) / rid)
    job = mgr.get(rid)
    if not (job.active if job else run.status.get("state") in ("queued", "running")):
        return job_panel(rid, key=key, show_curve=False, show_preview=False)

    @st.fragment(run_every=poll_every())
    def _live() -> None:
        status = job_panel(rid, key=key, show_curve=False, show_preview=False)
        if status.get("state") not in ("queued", "running"):
            st.rerun()  # the whole page, so the result renders outside this fragment

    _live()
    return run.status


def generated_view() -> None:
    # This tab's last previews (the strip), else the newest on this dataset (a reopened tab finds them).
    strip = st.session_state.get("gen_strip") or [r.id for r in runs_of("generate", state=None)
                                                    if (r.config.get("data") or {}).get("dataset") == cfg_data.dataset][:STRIP]
    if not strip:
        st.info("Choose a generator and classes, then **Generate preview**. Real images are shown beside the generated ones.")
        return
    rid = strip[0]
    status = live_panel(rid, "gen")
    run = Run(Path(mgr.root) / rid)
    if status.get("state") == "done" and (run.path / GENERATED).exists():
        try:
            s = _preview_set(run)
        except (LabError, OSError, ValueError) as exc:
            st.error(f"Could not read the generated images of {rid}: {exc}")
            return
        grid, near = preview_grid(run, s, with_real=True)
        st.caption(f"newest preview: {settings_label(run.config)}")
        st.image(grid, clamp=True)
        grid_download(grid, f"preview-{rid}", key=f"gen_png_{rid}")
        st.caption("Above each class's generated row: " + ("the nearest training image of each generated image (same class, pixel distance)."
                                                          if near else "real training images of that class."))
        f = run.path / GENERATED
        st.download_button("Download images (zip with params.json)", data=_zip(str(run.path), f.stat().st_mtime), file_name=f"{rid}.zip",
                           mime="application/zip", key=f"gen_dl_{rid}")
    done = [r for r in (Run(Path(mgr.root) / x) for x in strip) if r.exists() and (r.path / GENERATED).exists()]
    if len(done) > 1:
        st.subheader("Side by side: the last previews")
        st.caption("Each column is one preview with its settings; rows are classes, columns inside a preview are images.")
        cols = st.columns(len(done))
        for col, r in zip(cols, done):
            try:
                s = _preview_set(r)
            except (LabError, OSError, ValueError):
                col.caption(f"{r.id}: unreadable")
                continue
            col.markdown(f"**{settings_label(r.config)}**")
            g = preview_grid(r, s, with_real=False)[0]
            col.image(g, clamp=True)
            grid_download(g, f"preview-{r.id}", key=f"gen_side_png_{r.id}", where=col)


def balance_view() -> None:
    rid = st.session_state.get("bal_job")
    if not rid:
        return
    st.subheader("Balancing job")
    status = live_panel(rid, "bal")
    run = Run(Path(mgr.root) / rid)
    if status.get("state") == "done" and (run.path / BALANCED).exists():
        s = load_imageset(run.path / BALANCED)
        by = s.counts_by_provenance()
        real = by.get("real", [0] * s.num_classes)
        added = [sum(v[c] for k, v in by.items() if k != "real") for c in range(s.num_classes)]
        st.plotly_chart(viz.counts_figure(s.classes, real, added, minority=minority, added_label=f"added by {run.config.get('method')}"),
                        key=f"bal_fig_{rid}", width="stretch", config=chart_config(f"balanced-counts-{rid}"))
        st.success("Balanced set saved. Train a classifier on it on the **Train** page (Classifier tab → Training set).")


with right:
    generated_view()
    balance_view()
