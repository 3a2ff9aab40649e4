"""Dataset page: choose the data and the imbalance profile; see counts, samples and balancing previews."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from core.store.atomic import atomic_write_bytes
from core.data.archive import DEFAULT_LIMITS, MAX_UPLOAD_MB
from core.generators.balance import fill_plan
from core.data.loading import DATASETS, DataConfig
from core.data.profiles import ORDERS, PROFILES, most_reduced_classes
from core.errors import ConfigError, LabError
from core.generators.registry import build_generator
from core.data import disk
from core.viz import figures as viz
from core.settings import bounds
from app_pages._dataset import data_cfg, load, set_data_cfg
from app_pages._manager import paths_in_use
from app_pages._identity import strict, upload_folder
from app_pages._export import chart_config, grid_download
from app_pages._serving import number

st.title("Dataset")
st.caption("Pick the data and make it imbalanced. The choice carries over to every other page.")

cur = data_cfg()
PROFILE_HELP = {
    "full": "keep every training image",
    "paper": "class i keeps (i+1)/C of its images (the paper's Table 1: 500 … 5000 on CIFAR-10)",
    "linear": "counts fall linearly from the largest class to largest/ratio",
    "exponential": "counts fall exponentially (CIFAR-10-LT style) to largest/ratio",
    "step": "a fraction of the classes keep 1/ratio of their images, the rest keep all",
    "custom": "type one count per class",
    "balanced": "every class cut to the same count",
}


def _int_list(text: str) -> list[int] | None:
    text = text.strip()
    if not text:
        return None
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ConfigError(f"'{text}' is not a comma-separated list of whole numbers.", "Type counts like 50,100,150.")


def _check_counts(profile: str, counts: list[int] | None, dataset: str, data_dir: str | None, image_size: int | None) -> None:
    """The counts box in this page's words (the loader's own messages speak of --counts)."""
    if counts is None:
        return
    if any(k < 1 for k in counts):
        bad = [i for i, k in enumerate(counts) if k < 1]
        raise ConfigError(f"Every class needs at least 1 image; the count of class {', '.join(map(str, bad[:5]))} is "
                          f"{counts[bad[0]]}. A class with no images cannot be trained on, evaluated or filled.",
                          "Type counts of 1 or more in the Counts box.")
    top = bounds.BOUNDS["count"]
    if len(counts) > bounds.MAX_LIST or max(counts) > top.hi:
        raise ConfigError(f"The Counts box asks for {max(counts):,} images in a class ({len(counts):,} entries); counts go {top.text()}, "
                          f"at most {bounds.MAX_LIST:,} entries.", "Type smaller counts in the Counts box.")
    n = len(load(DataConfig(dataset=dataset, data_dir=data_dir, image_size=image_size, test_fraction=cur.test_fraction)).classes)
    if profile == "custom" and len(counts) != n:
        raise ConfigError(f"The custom profile needs {n} counts (one per class); the Counts box has {len(counts)}.",
                          f"Type {n} comma-separated counts in the Counts box.")
    if profile == "balanced" and len(counts) not in (1, n):
        raise ConfigError(f"The balanced profile takes one count; the box has {len(counts)}.",
                          "Type a single number in the box, or leave it empty for the smallest class's size.")


left, right = st.columns([1, 2])
fresh_upload = None  # an upload written in this run (removed again if it fails to load)
with left:
    dataset = st.selectbox("Dataset", DATASETS, index=DATASETS.index(cur.dataset) if cur.dataset in DATASETS else 0, key="ds_dataset",
                           help="digits is embedded (16×16, 10 classes) and works offline; the others need a local copy or a download.")
    data_dir = cur.data_dir if dataset == cur.dataset else None
    if dataset != "digits":
        sources = ["folder path", "zip upload"] if dataset == "imagefolder" else ["default location", "folder path", "zip upload"]
        source = st.radio("Source", sources, horizontal=True, key=f"ds_source_{dataset}")
        if source == "folder path":
            data_dir = st.text_input("Folder (or .zip path)", value=data_dir or "", key=f"ds_dir_{dataset}",
                                     placeholder="ROOT with train/<class>/ and test/<class>/, or ROOT/<class>/") or None
        elif source == "zip upload":
            lim = DEFAULT_LIMITS
            up = st.file_uploader("Dataset zip (ROOT/<class>/*.png or ROOT/train/<class>/…)", type=["zip"], key=f"ds_zip_{dataset}",
                                  help=f"At most {MAX_UPLOAD_MB / 1024:g} GB uploaded. Checked before anything is written: at most {lim.max_bytes / 1024**3:g} GB unpacked, "
                                       f"{lim.max_entries:,} files, and no file compressed more than {lim.max_ratio:g}-fold (zip bombs are refused).")
            if up is not None:
                data = up.getvalue()
                # keep the user's file name (errors name "fake.zip", not a hash); the hash folder keeps uploads apart,
                # in this identity's own folder on a shared server (app_pages/_identity.py)
                path = upload_folder() / "uploads" / hashlib.sha1(data).hexdigest()[:16] / (Path(up.name).name or "upload.zip")
                data_dir = str(path)
                if not path.exists():
                    try:  # the zip and what it unpacks to, against the disk budgets, before writing (core.data.disk)
                        disk.make_room(disk.upload_need(data), upload_folder() if strict() else None, paths_in_use())
                        atomic_write_bytes(path, data)
                        fresh_upload = path
                    except LabError as exc:
                        st.error(str(exc))
                        data_dir = None
            else:
                data_dir = None
                st.info("Upload a zip to continue.")
        else:
            data_dir = None
    native = st.checkbox("Native image size", value=cur.image_size is None, key="ds_native")
    image_size = None if native else int(number("Image size (pixels)", "image_size", cur.image_size or 32, key="ds_size",
                                                 help="Each image is resized to this square size when the dataset loads"))
    profile = st.selectbox("Imbalance profile", PROFILES, index=PROFILES.index(cur.profile) if cur.profile in PROFILES else 1, key="ds_profile",
                           format_func=lambda p: f"{p}: {PROFILE_HELP[p]}")
    ratio, minority_fraction, counts = cur.ratio, cur.minority_fraction, cur.counts
    if profile in ("linear", "exponential", "step"):
        ratio = float(number("Imbalance ratio (largest / smallest class, ≥ 1)", "ratio", float(cur.ratio), step=1.0, key="ds_ratio"))
    if profile == "step":
        minority_fraction = float(st.slider("Share of minority classes", 0.05, 0.95, bounds.clamp_default("minority_fraction", float(cur.minority_fraction)),
                                            0.05, key="ds_mfrac", help=bounds.help_text("minority_fraction")))
    order = st.selectbox("Which classes become minorities", ORDERS, index=ORDERS.index(cur.minority_order) if cur.minority_order in ORDERS else 0, key="ds_order",
                         help="index: class 0 smallest (the paper); reversed: class 0 largest (CIFAR-10-LT); shuffled: random with the seed")
    seed = int(number("Seed (which images each class keeps)", "seed", int(cur.seed), key="ds_seed"))
    judge_per_class = int(number("Judge split (images per class)", "judge_per_class", int(cur.judge_per_class), key="ds_judge",
                                 help="Reserved for the judge CNN behind FD/KID, precision/recall and novelty before the profile, "
                                      "so it never trains on an image those metrics compare against. 0: the judge trains on the "
                                      "whole train split (biased)"))

ok = True
try:
    if profile in ("custom", "balanced"):
        with left:
            counts_text = st.text_input("Counts (one per class)" if profile == "custom" else "Count per class (empty: the smallest class)",
                                        value=",".join(map(str, cur.counts or [])) if profile == cur.profile else "", key=f"ds_counts_{profile}",
                                        help=bounds.help_text("count", "Whole numbers separated by commas"))
        counts = _int_list(counts_text)
        if profile == "custom" and counts is None:
            raise ConfigError("The custom profile needs one count per class.", "Type the counts, e.g. 50,100,150,… (one per class).")
        _check_counts(profile, counts, dataset, data_dir, image_size)
    if dataset == "imagefolder" and not data_dir:
        raise ConfigError("The imagefolder dataset needs a folder path or an uploaded zip.", "Type a folder path or upload a zip on the left.")
    cfg = DataConfig(dataset=dataset, data_dir=data_dir, image_size=image_size, profile=profile, ratio=ratio,
                     minority_fraction=minority_fraction, counts=counts, minority_order=order, seed=seed, test_fraction=cur.test_fraction,
                     judge_per_class=judge_per_class)
    ds = load(cfg)
    from core.data.profiles import apply_profile

    train = apply_profile(ds.train, cfg)
except LabError as exc:
    ok = False
    if fresh_upload is not None:  # an upload that does not extract or load leaves nothing behind
        disk.discard_upload(fresh_upload)
    with right:
        st.error(str(exc))
        st.caption("Nothing was changed: the other pages keep using the last valid choice.")

if ok:
    set_data_cfg(cfg)
    real, available = train.counts(), ds.train.counts()
    added = fill_plan(real)
    minority = most_reduced_classes(real, available)
    with right:
        st.subheader(f"{ds.name}: {len(ds.classes)} classes, {ds.image_size}×{ds.image_size}, {'RGB' if ds.channels == 3 else 'grayscale'}")
        m = st.columns(4)
        m[0].metric("train images", f"{sum(real):,}", help="after the profile")
        m[1].metric("imbalance ratio", f"{max(real) / max(1, min(real)):.1f}", help="largest / smallest class")
        m[2].metric("balancing adds", f"{sum(added):,}")
        m[3].metric("test images", f"{len(ds.test):,}", help="balanced test split")
        if ds.judge is not None:
            st.caption(f"Judge split: {judge_per_class} images per class ({len(ds.judge):,} in all) reserved for the judge CNN "
                       f"before the profile; the profile draws from the remaining {len(ds.train):,} "
                       f"(per class: {', '.join(map(str, ds.train.counts()))}).")
        st.plotly_chart(viz.counts_figure(ds.classes, real, added, available, minority), key="ds_counts_fig", width="stretch", config=chart_config("class-counts"))
        if ds.skipped:
            st.warning(f"{len(ds.skipped)} file(s) were skipped while reading the dataset (corrupt or not images). The rest loaded.")
            with st.expander("skipped files"):
                st.dataframe([{"file": p, "reason": r} for p, r in ds.skipped], width="stretch")

    st.subheader("Real samples per class")
    per = 10
    for c, name in enumerate(ds.classes[:20]):
        imgs = train.of_class(c).images[:per]
        cols = st.columns([1, 8])
        cols[0].markdown(f"**{name}**" + f"  \n{real[c]} imgs" + ("  \n:red[minority]" if c in minority else ""))
        cols[1].image(viz.image_grid(imgs, ncol=per), clamp=True)
    if len(ds.classes) > 20:
        st.caption(f"showing 20 of {len(ds.classes)} classes")
    shown = range(min(20, len(ds.classes)))
    grid_download(viz.labelled_grid([train.of_class(c).images[:per] for c in shown], [f"{ds.classes[c]} ({real[c]})" for c in shown], row_title="class"),
                  f"{cur.dataset}-{cur.profile}-samples", key="ds_samples_png")

    st.subheader("Preview: what Mixup / CutMix balancing would add")
    p = st.columns([1, 1, 1, 2])
    method = p[0].selectbox("Method", ["mixup", "cutmix", "oversample"], key="ds_prev_method")
    pc = p[1].selectbox("Class", list(range(len(ds.classes))), index=minority[0] if minority else 0, format_func=lambda c: ds.classes[c], key="ds_prev_class")
    lam = float(p[2].slider("λ", 0.05, 0.95, 0.6, 0.05, key="ds_prev_lam", help="the paper uses λ = 0.6")) if method != "oversample" else None
    try:
        gen = build_generator(method, train, **({"lam": lam} if lam is not None else {}))
        fake = gen.generate(int(pc), 10, seed=0)
        prev_grid = viz.rows_grid([train.of_class(int(pc)).images[:10], fake.images])
        st.image(prev_grid, clamp=True, caption=f"top: real '{ds.classes[pc]}' images; bottom: {method} images that balancing would add (seed 0)")
        grid_download(prev_grid, f"{method}-class{pc}-preview", key="ds_prev_png")
    except LabError as exc:
        st.error(str(exc))
