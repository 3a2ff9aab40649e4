"""Generate page: pick a generator, preview its images per class beside real ones, download, balance."""

from __future__ import annotations

import random
from pathlib import Path

import streamlit as st

from core import viz
from core.checkpoint import checkpoint_path
from core.data.profiles import most_reduced_classes
from core.errors import LabError
from core.job_runners import BALANCED, CFG_KIND, GENERATED, export_zip, load_imageset
from core.runs import Run
from app_pages._common import POLL_S, data_cfg, dataset_caption, job_panel, manager, optional, prepared_or_stop, runs_of

st.title("Generate")
st.markdown(dataset_caption())
cfg_data = data_cfg()
ds, train = prepared_or_stop(cfg_data)
mgr = manager()
SAMPLERS = ["dpm", "ddim", "ddpm"]

# -- which generators exist ------------------------------------------------------------
options: dict[str, tuple[str, dict]] = {}
for r in runs_of(CFG_KIND, state=None):
    if (r.config.get("data") or {}).get("dataset") == cfg_data.dataset and checkpoint_path(r.checkpoints, "latest") is not None:
        options[f"CFG model {r.id} ({r.status.get('state')})"] = ("cfg", {"run_dir": str(r.path)})
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

left, right = st.columns([1, 2])
with left:
    label = st.selectbox("Generator", list(options), key="gen_choice")
    if not any(m == "cfg" for m, _ in options.values()):
        st.caption("No trained CFG model for this dataset yet: train one on the **Train** page.")
    if sd_note and not any(m == "sd" for m, _ in options.values()):
        with st.expander("Stable Diffusion is not available: how to add it"):
            st.caption(sd_note)
    method, base_params = options[label]
    params = dict(base_params)
    minority = most_reduced_classes(train.counts(), ds.train.counts())
    classes = st.multiselect("Classes", list(range(len(ds.classes))), default=minority, format_func=lambda c: ds.classes[c], key="gen_classes")
    count = int(st.number_input("Images per class", 1, 256, 8, key="gen_count"))
    if method in ("cfg", "sd"):
        w = float(st.number_input("Guidance weight w (paper's; 0 = plain conditional)", 0.0, 50.0, 7.5 if method == "cfg" else 6.5, 0.1, key=f"gen_w_{method}"))
        st.markdown(f"guidance_scale = 1 + w = **{1 + w:g}** (diffusers' convention)")
        c = st.columns(2)
        if method == "cfg":
            params["sampler"] = c[0].selectbox("Sampler", SAMPLERS, key="gen_sampler")
        params["steps"] = int(c[1].number_input("Sampling steps", 1, 1000, 25, key="gen_steps"))
        params["w"] = w
    elif method in ("mixup", "cutmix"):
        params["lam"] = float(st.slider("λ (share of the first image)", 0.05, 0.95, 0.6, 0.05, key="gen_lam", help="the paper uses λ = 0.6"))
    last = st.session_state.get("gen_last_seed")
    c = st.columns([2, 2])
    if c[1].button("New seed", icon=":material/casino:", key="gen_new_seed"):
        st.session_state["gen_seed"] = random.randrange(2**31 - 1)
    reuse = c[1].checkbox(f"reuse last seed ({last})" if last is not None else "reuse last seed", value=False, disabled=last is None, key="gen_reuse")
    st.session_state.setdefault("gen_seed", 0)
    seed = int(c[0].number_input("Seed", 0, 2**31 - 1, key="gen_seed"))
    if reuse and last is not None:
        seed = int(last)
    go = st.button("Generate preview", type="primary", key="gen_go", disabled=not classes, width="stretch")
    bal = st.button("Balance the dataset with this generator", key="gen_balance", width="stretch",
                    help="fills every class up to the largest one with this generator, as a background job")

if go:
    try:
        job = mgr.submit("generate", {"data": cfg_data.to_dict(), "method": method, "params": params, "classes": [int(c) for c in classes],
                                      "count": count, "seed": seed}, name=method)
        st.session_state["gen_job"] = job.id
        st.session_state["gen_last_seed"] = seed
    except LabError as exc:
        st.error(str(exc))
if bal:
    try:
        job = mgr.submit("balance", {"data": cfg_data.to_dict(), "method": method, "params": params, "target": None, "seed": seed}, name=method)
        st.session_state["bal_job"] = job.id
        st.session_state["gen_last_seed"] = seed
    except LabError as exc:
        st.error(str(exc))


@st.cache_data(max_entries=8, show_spinner=False)
def _zip(path: str, mtime: float) -> bytes:
    return export_zip(path)


@st.fragment(run_every=POLL_S)
def generated_view() -> None:
    # This tab's last job, else the newest on this dataset (a reopened tab finds its result).
    rid = st.session_state.get("gen_job") or next((r.id for r in runs_of("generate", state=None)
                                                   if (r.config.get("data") or {}).get("dataset") == cfg_data.dataset), None)
    if not rid:
        st.info("Choose a generator and classes, then **Generate preview**. Real images are shown beside the generated ones.")
        return
    status = job_panel(rid, key="gen", show_curve=False, show_preview=False)
    run = Run(Path(mgr.root) / rid)
    if status.get("state") != "done" or not (run.path / GENERATED).exists():
        return
    try:
        s = load_imageset(run.path / GENERATED)
    except (LabError, OSError, ValueError) as exc:
        st.error(f"Could not read the generated images of {rid}: {exc}")
        return
    name = s.provenance[0] if len(s) else "?"
    st.caption(f"per class: top row real training images, bottom row {name} (seed {run.config.get('seed')})")
    for c in sorted(set(s.labels.tolist())):
        cols = st.columns([1, 8])
        cols[0].markdown(f"**{ds.classes[c]}**" + ("  \n:red[minority]" if c in minority else ""))
        gen_c = s.of_class(c).images[:12]
        cols[1].image(viz.rows_grid([train.of_class(c).images[: len(gen_c)], gen_c]), clamp=True)
    f = run.path / GENERATED
    st.download_button("Download images (zip with params.json)", data=_zip(str(run.path), f.stat().st_mtime), file_name=f"{rid}.zip",
                       mime="application/zip", key=f"gen_dl_{rid}")


@st.fragment(run_every=POLL_S)
def balance_view() -> None:
    rid = st.session_state.get("bal_job")
    if not rid:
        return
    st.subheader("Balancing job")
    status = job_panel(rid, key="bal", show_curve=False, show_preview=False)
    run = Run(Path(mgr.root) / rid)
    if status.get("state") == "done" and (run.path / BALANCED).exists():
        s = load_imageset(run.path / BALANCED)
        by = s.counts_by_provenance()
        real = by.get("real", [0] * s.num_classes)
        added = [sum(v[c] for k, v in by.items() if k != "real") for c in range(s.num_classes)]
        st.plotly_chart(viz.counts_figure(s.classes, real, added, minority=minority, added_label=f"added by {run.config.get('method')}"),
                        key=f"bal_fig_{rid}", width="stretch")
        st.success("Balanced set saved. Train a classifier on it on the **Train** page (Classifier tab → Training set).")


with right:
    generated_view()
    balance_view()
