"""Novelty (memorisation) and fidelity/diversity of generated images.

**Nearest neighbour.** For a generated image g (Somepalli et al. 2023 and Carlini et al. 2023
test for copies the same way: distance to the closest training image)

    d(g) = min_{x ∈ train, m ∈ M} ‖φ(g) − φ(m(x))‖₂

over the training images of *every* class, so a copy filed under the wrong label is still a
copy, and over M = {identity, horizontal flip} when the generator trained with flips (RGB by
default: it saw mirrored images, so it can reproduce them), else M = {identity}. Each sample
reports its neighbour's class and whether the neighbour was mirrored.

with φ either the pixels the classifier sees (``pixel``: uint8 / 255, flattened) or the lab's
feature extractor (``feature``: Inception-v3 pool3 when its weights exist, else the judge CNN's
penultimate layer, named as such — never called FID features).

**Held-out real images.** The reference for "how close does a *new* real image come to the
training set" is the real images of class c the generator never saw: those the profile
dropped. A class that lost fewer than ``MIN_HELD_OUT`` images has no held-out reference: its
near-copy rate is not calibrated (None). It never falls back to the test split (issue 25: the
test split is read once, for the final figures and verdicts).

**Near-copy rule** (stated in every result as ``rule``). The held-out images of class c are
split in two halves by a fixed seed. On the calibration half A

    τ_c = Q_q({ d(h) : h ∈ A }),   q = 0.05 by default (the 5th percentile),

and g (of class c) is a near-copy when d(g) ≤ τ_c: it is closer to a training image than 95 %
of new real images of its class are. d(h) is the same search (every class, the same M), so the
threshold and the samples are measured alike. The other half B is scored with the same τ_c and reported as
``heldout_rate``: it should come out near q, which measures the rule instead of assuming it.
``median_nn_relative`` = median d(g) / median d(h ∈ B): 1 means "as far from the training set
as new real images", near 0 means copies.

**Precision / recall** (Kynkäänniemi et al. 2019, k-NN manifolds): precision is the share of
generated images inside the union of k-NN balls of the real images (how real they look);
recall the share of real images inside the k-NN balls of the generated ones (how much of the
real variety they cover). The real side is always the *held-out* set, never the generator's
own training images (copies of those would score 1 and 1). torch-fidelity computes them from
feature tensors (``calculate_precision_recall_full``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from core.data.imageset import ImageSet
from core.errors import ConfigError, DataError

MIN_HELD_OUT = 10  # a class with fewer dropped images has no held-out reference (never the test split)
DEFAULT_QUANTILE = 0.05
DEFAULT_K = 3  # torch-fidelity's default prc_neighborhood (Kynkäänniemi et al. use k = 3)


def rule_text(quantile: float = DEFAULT_QUANTILE, flips: bool = False) -> str:
    space = "the training images of every class" + (" and their horizontal flips" if flips else "")
    return (f"near-copy: NN distance to {space} <= the {quantile * 100:g}th percentile of the same distance for held-out "
            f"real images of the sample's class (calibrated on one half of them; heldout_rate is the other half's rate)")


# ------------------------------------------------------------------------------ held out
def held_out_split(data_cfg) -> tuple[ImageSet, ImageSet, dict[str, str]]:
    """(imbalanced train, held-out real images, source per class name) for a DataConfig."""
    from core.data.loading import load_dataset
    from core.data.profiles import apply_profile, dropped_by_profile

    ds = load_dataset(data_cfg)
    train = apply_profile(ds.train, data_cfg)
    return (train, *held_out_from(dropped_by_profile(ds.train, data_cfg)))


def held_out_from(dropped: ImageSet) -> tuple[ImageSet, dict[str, str]]:
    """Per class: the dropped images when there are at least MIN_HELD_OUT, else none (that class's
    near-copy rate is then not calibrated). Never the test split."""
    parts, source = [], {}
    for c, name in enumerate(dropped.classes):
        d = dropped.of_class(c)
        if len(d) >= MIN_HELD_OUT:
            parts.append(d)
            source[name] = "dropped by the profile"
        else:
            parts.append(d.subset(torch.zeros(0, dtype=torch.long)))
            source[name] = f"none: the profile dropped {len(d)} < {MIN_HELD_OUT} images (not calibrated)"
    return ImageSet.concat(parts), source


# ---------------------------------------------------------------------------- distances
def pixel_vectors(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32 (N, C·H·W) in [0, 1]: the pixels the classifier sees."""
    return (images.float() / 255.0).flatten(1).numpy()


def nn_distances(query: np.ndarray, ref: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query row's nearest ``ref`` row, Euclidean.

    The search uses torch.cdist's matrix-product form (fast: one GEMM per chunk); the winner's
    distance is then recomputed directly, ‖q − r‖, so an exact copy gives exactly 0 (the
    product form rounds it to ~1e-3)."""
    if len(ref) == 0:
        return np.full(len(query), np.inf), np.full(len(query), -1)
    r = torch.as_tensor(np.asarray(ref, np.float32))
    dist, idx = [], []
    for lo in range(0, len(query), chunk):
        q = torch.as_tensor(np.asarray(query[lo:lo + chunk], np.float32))
        i = torch.cdist(q, r, compute_mode="use_mm_for_euclid_dist").argmin(dim=1)
        dist.append(torch.linalg.vector_norm(q - r[i], dim=1).numpy())
        idx.append(i.numpy())
    return (np.concatenate(dist), np.concatenate(idx)) if dist else (np.zeros(0), np.zeros(0, np.int64))


class SearchSpace:
    """The training images a sample is compared with: every class, plus their horizontal flips
    when ``flipped`` vectors are given. Keeps, for each row, its class, its index in the
    training set and whether it is mirrored."""

    def __init__(self, train: np.ndarray, train_labels: np.ndarray, flipped: np.ndarray | None = None):
        n = len(train)
        self.vectors = train if flipped is None else np.concatenate([train, flipped])
        self.labels = np.asarray(train_labels) if flipped is None else np.concatenate([train_labels, train_labels])
        self.index = np.arange(n) if flipped is None else np.concatenate([np.arange(n), np.arange(n)])
        self.mirrored = np.zeros(len(self.vectors), bool)
        self.mirrored[n:] = True

    @property
    def flips(self) -> bool:
        return bool(self.mirrored.any())

    def nearest(self, query: np.ndarray) -> dict[str, np.ndarray]:
        d, j = nn_distances(query, self.vectors)
        ok = j >= 0
        return {"distance": d, "neighbour_class": np.where(ok, self.labels[np.maximum(j, 0)], -1),
                "neighbour_index": np.where(ok, self.index[np.maximum(j, 0)], -1), "mirrored": ok & self.mirrored[np.maximum(j, 0)]}


def flipped_pixels(images: torch.Tensor) -> np.ndarray:
    """The pixel vectors of horizontally mirrored images (width is the last axis)."""
    return pixel_vectors(images.flip(-1))


def _halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    k = (n + 1) // 2
    return perm[:k], perm[k:]


def _check_images(generated: ImageSet, train: ImageSet) -> None:
    if generated.images.shape[1:] != train.images.shape[1:]:
        raise DataError(f"The generated images are {tuple(generated.images.shape[1:])} (C, H, W) but the training images are "
                        f"{tuple(train.images.shape[1:])}.", "Score images made for this dataset (same channels and size).")
    if generated.classes != train.classes:
        raise DataError(f"The generated images' classes {generated.classes[:5]}... are not the dataset's {train.classes[:5]}....",
                        "Score them against the dataset they were generated for.")


def _median(x: np.ndarray) -> float | None:
    return float(np.median(x)) if len(x) else None


def score_space(gen: np.ndarray, gen_labels: np.ndarray, space: SearchSpace, ho: np.ndarray, ho_labels: np.ndarray,
                classes: list[str], quantile: float = DEFAULT_QUANTILE, seed: int = 0, per_sample: bool = False) -> dict:
    """Near-copy rate and NN distances in one space (rows are vectors, labels are class indices).

    Every sample and every held-out image is searched against the whole ``space`` (all classes,
    flips when it has them); the near-copy threshold is per class of the sample. Top-level
    ``near_copy_rate`` counts every copy; ``cross_class_rate`` and ``mirrored_rate`` are the
    shares of generated images that are near-copies of another class's image / of a mirrored one."""
    ng, nh = space.nearest(gen), space.nearest(ho)
    d_all, near_all = ng["distance"], np.zeros(len(gen), bool)
    scored_all = np.zeros(len(gen), bool)
    per_class, ho_hits, ho_scored, rel = {}, 0, 0, []
    for c, name in enumerate(classes):
        gm, hm = gen_labels == c, ho_labels == c
        d_g, d_h = d_all[gm], nh["distance"][hm]
        entry = {"n": int(gm.sum()), "n_train": int(((space.labels == c) & ~space.mirrored).sum()), "n_held_out": int(hm.sum()),
                 "threshold": None, "near_copy_rate": None, "cross_class_copies": None, "mirrored_copies": None,
                 "median_nn_distance": None, "median_nn_relative": None, "heldout_rate": None,
                 "neighbour_classes": {classes[k]: int(v) for k, v in zip(*np.unique(ng["neighbour_class"][gm], return_counts=True)) if k >= 0}}
        if not gm.any():
            continue  # only classes that have generated images are reported
        entry["median_nn_distance"] = _median(d_g)
        if len(d_h) < 2:
            entry["note"] = f"only {len(d_h)} held-out real image(s): no threshold can be calibrated"
            per_class[name] = entry
            continue
        a, b = _halves(len(d_h), seed * 1_000_003 + c)
        tau = float(np.quantile(d_h[a], quantile))
        near = d_g <= tau
        near_all[gm], scored_all[gm] = near, True
        entry.update(threshold=tau, near_copy_rate=float(near.mean()), heldout_rate=float((d_h[b] <= tau).mean()),
                     cross_class_copies=int((near & (ng["neighbour_class"][gm] != c)).sum()),
                     mirrored_copies=int((near & ng["mirrored"][gm]).sum()))
        ref_med = float(np.median(d_h[b]))
        if ref_med > 0:
            entry["median_nn_relative"] = float(np.median(d_g) / ref_med)
            rel.append(d_g / ref_med)
        ho_hits, ho_scored = ho_hits + int((d_h[b] <= tau).sum()), ho_scored + len(b)
        per_class[name] = entry
    n_scored = int(scored_all.sum())
    out = {
        "near_copy_rate": float(near_all[scored_all].mean()) if n_scored else None,
        "cross_class_rate": float((near_all & scored_all & (ng["neighbour_class"] != gen_labels)).sum() / n_scored) if n_scored else None,
        "mirrored_rate": float((near_all & scored_all & ng["mirrored"]).sum() / n_scored) if n_scored else None,
        "median_nn_relative": float(np.median(np.concatenate(rel))) if rel else None,
        "heldout_rate": ho_hits / ho_scored if ho_scored else None,
        "flips": space.flips,
        "per_class": per_class,
    }
    if per_sample:
        out["samples"] = [{"class": classes[int(gen_labels[i])], "neighbour_class": classes[int(ng["neighbour_class"][i])] if ng["neighbour_class"][i] >= 0 else None,
                           "neighbour_index": int(ng["neighbour_index"][i]), "mirrored": bool(ng["mirrored"][i]),
                           "distance": float(d_all[i]), "near_copy": bool(near_all[i]) if scored_all[i] else None}
                          for i in range(len(gen))]
    return out


def novelty(generated: ImageSet, train: ImageSet, held_out: ImageSet, extractor=None, quantile: float = DEFAULT_QUANTILE,
            seed: int = 0, features: tuple[np.ndarray, ...] | None = None, flips: bool = False, per_sample: bool = False) -> dict:
    """Near-copy rates of ``generated`` against ``train`` (the generator's training images, every
    class, and their mirror images when ``flips``), calibrated on ``held_out``; pixel space
    first, feature space under "feature" when an extractor (or precomputed (generated, train,
    held-out[, mirrored train]) features) is given."""
    if not 0.0 < quantile < 1.0:
        raise ConfigError(f"quantile {quantile} must be between 0 and 1.", "Use e.g. 0.05 (the 5th percentile).")
    _check_images(generated, train)
    labs = [s.labels.numpy() for s in (generated, train, held_out)]
    px_space = SearchSpace(pixel_vectors(train.images), labs[1], flipped_pixels(train.images) if flips else None)
    px = score_space(pixel_vectors(generated.images), labs[0], px_space, pixel_vectors(held_out.images), labs[2], generated.classes,
                     quantile, seed, per_sample)
    out = {"space": "pixel", "rule": rule_text(quantile, flips), "quantile": quantile, **px}
    if features is None and extractor is not None:
        features = tuple(extractor.features(s.images) for s in (generated, train, held_out))
    if features is not None:
        flipped = None
        if flips:
            flipped = features[3] if len(features) > 3 else extractor.features(train.images.flip(-1))
        f_space = SearchSpace(features[1], labs[1], flipped)
        fs = score_space(features[0], labs[0], f_space, features[2], labs[2], generated.classes, quantile, seed, per_sample)
        out["feature"] = {"space": "feature", "extractor": getattr(extractor, "label", "features given"), **fs}
    return out


# --------------------------------------------------------------------- precision / recall
def precision_recall(gen_features: np.ndarray, real_features: np.ndarray, k: int = DEFAULT_K) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with torch-fidelity's implementation.

    Each side needs more than k images: the k-th neighbour of a point excludes the point itself."""
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    if len(gen_features) <= k or len(real_features) <= k:
        raise ConfigError(f"Precision/recall with k = {k} neighbours needs at least {k + 1} images on each side, got "
                          f"{len(gen_features)} generated and {len(real_features)} real.",
                          f"Generate more images of that class, or lower k (--k) below {min(len(gen_features), len(real_features))}.")
    g = torch.as_tensor(np.asarray(gen_features, np.float32))
    r = torch.as_tensor(np.asarray(real_features, np.float32))
    return calculate_precision_recall_full(g, r, neighborhood=k)


def fidelity_diversity(gen: np.ndarray, gen_labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray, classes: list[str],
                       k: int = DEFAULT_K) -> dict:
    """Precision/recall per class (generated class c vs held-out class c) and for the whole set."""
    per_class = {}
    for c, name in enumerate(classes):
        g, r = gen[gen_labels == c], real[real_labels == c]
        if len(g) == 0:
            continue
        entry = {"n": int(len(g)), "n_real": int(len(r)), "precision": None, "recall": None}
        try:
            entry["precision"], entry["recall"] = precision_recall(g, r, k)
        except ConfigError as exc:
            entry["note"] = exc.problem
        per_class[name] = entry
    out = {"k": k, "precision": None, "recall": None, "per_class": per_class}
    present = np.isin(real_labels, np.unique(gen_labels))  # compare with the real images of the generated classes only
    try:
        out["precision"], out["recall"] = precision_recall(gen, real[present], k)
    except ConfigError as exc:
        out["note"] = exc.problem
    return out


# ------------------------------------------------------------------------------- for callers
def fill_scores(generated: ImageSet, train: ImageSet, held_out: ImageSet, extractor, k: int = DEFAULT_K,
                quantile: float = DEFAULT_QUANTILE, seed: int = 0, flips: bool = False) -> dict:
    """What a study fill row needs: near-copy rate (pixel space, every class, flips when the
    generator saw them), precision and recall (on the extractor's features, vs held-out real
    images), and per class both."""
    _check_images(generated, train)
    feats = tuple(extractor.features(s.images) for s in (generated, train, held_out))
    nov = novelty(generated, train, held_out, extractor, quantile, seed, features=feats, flips=flips)
    pr = fidelity_diversity(feats[0], generated.labels.numpy(), feats[2], held_out.labels.numpy(), generated.classes, k)
    per_class = {name: {**e, **{f"{key}": pr["per_class"].get(name, {}).get(key) for key in ("precision", "recall")},
                        "feature_near_copy_rate": nov["feature"]["per_class"].get(name, {}).get("near_copy_rate")}
                 for name, e in nov["per_class"].items()}
    return {"near_copy_rate": nov["near_copy_rate"], "feature_near_copy_rate": nov["feature"]["near_copy_rate"],
            "cross_class_rate": nov["cross_class_rate"], "mirrored_rate": nov["mirrored_rate"], "flips": flips,
            "feature_cross_class_rate": nov["feature"]["cross_class_rate"], "feature_mirrored_rate": nov["feature"]["mirrored_rate"],
            "median_nn_relative": nov["median_nn_relative"], "heldout_rate": nov["heldout_rate"],
            "precision": pr["precision"], "recall": pr["recall"], "k": k, "extractor": getattr(extractor, "label", None),
            "rule": nov["rule"], "per_class": per_class}


def nearest_training(preview: ImageSet, train: ImageSet, held_out: ImageSet | None = None, quantile: float = DEFAULT_QUANTILE,
                     seed: int = 0, flips: bool = False) -> list[dict]:
    """For each preview image: its nearest training image in pixel space, searched over every
    class (and their mirror images with ``flips``), as the near-copy rule searches.

    Returns one dict per image: ``train_index`` (into ``train``), ``image`` (uint8 C×H×W, mirrored
    when the neighbour was), ``neighbour_class`` (its class name), ``mirrored``, ``distance``, and,
    with ``held_out``, the sample class's ``threshold`` and ``near_copy``."""
    _check_images(preview, train)
    tr_lab, pv_lab = train.labels.numpy(), preview.labels.numpy()
    space = SearchSpace(pixel_vectors(train.images), tr_lab, flipped_pixels(train.images) if flips else None)
    thresholds: dict[int, float] = {}
    if held_out is not None:
        ho_lab = held_out.labels.numpy()
        for c in np.unique(pv_lab):
            h = held_out.images[torch.from_numpy(ho_lab == c)]
            if len(h) >= 2:
                d_h = space.nearest(pixel_vectors(h))["distance"]
                a, _ = _halves(len(h), seed * 1_000_003 + int(c))
                thresholds[int(c)] = float(np.quantile(d_h[a], quantile))
    if len(train) == 0:
        return [{"train_index": None, "image": None, "neighbour_class": None, "mirrored": None, "distance": None, "threshold": None,
                 "near_copy": None} for _ in range(len(preview))]
    nn = space.nearest(pixel_vectors(preview.images))
    out = []
    for i in range(len(preview)):
        j, tau, d = int(nn["neighbour_index"][i]), thresholds.get(int(pv_lab[i])), float(nn["distance"][i])
        img = train.images[j].flip(-1) if nn["mirrored"][i] else train.images[j]
        out.append({"train_index": j, "image": img, "neighbour_class": train.classes[int(nn["neighbour_class"][i])],
                    "mirrored": bool(nn["mirrored"][i]), "distance": d, "threshold": tau, "near_copy": None if tau is None else bool(d <= tau)})
    return out


# --------------------------------------------------------------------------- image folders
def load_images(path: str | Path, classes: list[str], channels: int, image_size: int) -> ImageSet:
    """Generated images from ``samples.npz`` (or a folder holding one), or from class sub-folders
    named like ``sample``/``dataset --export`` write them (``003_cat``) or by class name."""
    from PIL import Image

    path = Path(path).expanduser()
    npz = path if path.suffix == ".npz" else path / "samples.npz"
    if npz.exists():
        with np.load(npz, allow_pickle=False) as z:  # the file core.generators.cfg.save_samples writes
            n_cls = len(z["classes"]) if "classes" in z else len(classes)
            if n_cls != len(classes):
                raise DataError(f"{npz} holds images of {n_cls} classes, the dataset has {len(classes)}.", "Score images generated for this dataset.")
            prov = z["provenance"].astype(object) if "provenance" in z else None
            return ImageSet(torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]), list(classes), provenance=prov)
    if not path.is_dir():
        raise DataError(f"{path} is neither a folder nor a samples.npz.", "Pass the --out folder of `python -m core sample`, or a folder of class sub-folders.")
    images, labels, unknown = [], [], []
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        c = _class_of_folder(sub.name, classes)
        if c is None:
            unknown.append(sub.name)
            continue
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
                continue
            img = Image.open(f).convert("L" if channels == 1 else "RGB")
            if img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
            images.append(torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()))
            labels.append(c)
    if unknown:
        raise DataError(f"Folder(s) {unknown[:5]} in {path} match no class of the dataset ({', '.join(classes[:10])}).",
                        "Name class folders by class name or as NNN_name (the layout `sample` writes), or remove the others.")
    if not images:
        raise DataError(f"No images found in {path}.", "Pass a folder with class sub-folders of PNGs, or a samples.npz.")
    return ImageSet(torch.stack(images), torch.tensor(labels), list(classes), provenance=np.full(len(images), "generated", dtype=object))


def _class_of_folder(name: str, classes: list[str]) -> int | None:
    if name in classes:
        return classes.index(name)
    head, _, rest = name.partition("_")
    if head.isdigit() and int(head) < len(classes):
        return int(head)
    return None


def clean(obj):
    """NaN/inf -> None, numpy scalars -> Python, for JSON."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
