"""Generation metrics: Fréchet distance and KID on Inception-v3 or a labelled substitute.

Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017):

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2·(Σ₁Σ₂)^{1/2})

"FID" is this on Inception-v3 pool3 features (torch-fidelity's port of the TF graph,
the one torchmetrics uses). Offline without those weights the same distance is
computed on the judge CNN's features (core.metrics.judge) and reported as ``fd_judge`` /
"FD (judge CNN features)" — never as FID.

KID (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel
k(x, y) = (xᵀy/D + 1)³, averaged over random equal-size subsets; unbiased at small
n, which suits minority classes. Reported as "KID" on Inception and "KD (judge CNN
features)" on the substitute, under the row key ``kid`` with its extractor named.

Reference statistics (μ, Σ, a KID feature sample, per-class μ/Σ) are cached per
dataset, split and extractor under ``.cache/gen_refs/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torchmetrics.image.kid import poly_mmd

from core.data.imageset import REAL, ImageSet
from core.errors import ConfigError, WeightsMissingError
from core.paths import cache_dir, models_dir

INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
EXTRACTORS = ("auto", "inception", "judge")
REF_VERSION = 1


def inception_weights_path() -> Path:
    return models_dir() / "inception" / INCEPTION_FILE


def _offline() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("IMBALANCE_LAB_OFFLINE", "HF_HUB_OFFLINE"))


# ----------------------------------------------------------------------------- math
def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, N−1) covariance of (N, D) features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if len(f) < 2:
        raise ConfigError(f"A Fréchet distance needs at least 2 images, got {len(f)}.", "Generate or keep more images of that class.")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """d² = ‖μ₁−μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2·Tr (Σ₁Σ₂)^{1/2}.

    Tr (Σ₁Σ₂)^{1/2} = Σ_i √λ_i(Σ₁Σ₂): Σ₁Σ₂ is similar to the PSD Σ₁^{1/2}Σ₂Σ₁^{1/2}, so its
    eigenvalues are real and ≥ 0 up to rounding (the route torchmetrics takes; it avoids
    scipy.linalg.sqrtm's failures on singular covariances of small samples).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"shape mismatch: {mu1.shape} vs {mu2.shape}, {s1.shape} vs {s2.shape}")
    eig = np.linalg.eigvals(s1 @ s2)
    tr_sqrt = np.sqrt(np.clip(eig.real, 0.0, None)).sum()
    d2 = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)
    return max(d2, 0.0)


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 50, subset_size: int = 1000, seed: int = 0) -> tuple[float, float, int]:
    """(mean, std, subset size) of the unbiased polynomial-kernel MMD² over random subsets."""
    r, f = torch.as_tensor(np.asarray(real), dtype=torch.float64), torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    m = min(subset_size, len(r), len(f))
    if m < 2:
        raise ConfigError(f"KID needs at least 2 images on each side, got {len(r)} and {len(f)}.", "Generate more images.")
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        a = r[torch.randperm(len(r), generator=g)[:m]]
        b = f[torch.randperm(len(f), generator=g)[:m]]
        vals.append(float(poly_mmd(a, b, degree=3, gamma=None, coef=1.0)))  # torchmetrics' kernel + unbiased MMD
    v = np.array(vals)
    return float(v.mean()), float(v.std()), m


# ------------------------------------------------------------------------ extractors
@dataclass
class Extractor:
    """A feature extractor and the honest names of the distances computed on it."""

    name: str  # "inception" | "judge"
    key: str  # row/file key of the Fréchet distance: "fid" | "fd_judge"
    label: str  # what tables and charts call it
    kid_label: str
    cache_id: str  # identifies the weights, for the reference cache
    fn: Callable[[torch.Tensor], torch.Tensor]
    batch_size: int = 256

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        out = [self.fn(images[i : i + self.batch_size]).double().cpu() for i in range(0, len(images), self.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, 1))


def _missing_inception(reason: str) -> WeightsMissingError:
    path = inception_weights_path()
    return WeightsMissingError(
        f"Inception-v3 FID weights are not available ({reason}): {path} does not exist.",
        f"Download {INCEPTION_URL} (95 MB, torch-fidelity's FID Inception) and save it as {path} "
        f"(models/inception/{INCEPTION_FILE}); until then the lab reports 'FD (judge CNN features)' instead of FID.",
    )


def load_inception(device=None, download: bool | None = None) -> Extractor:
    """torch-fidelity's FID Inception-v3 (pool3, 2048-d) from models/inception/, downloaded when online."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = inception_weights_path()
    if not path.exists():
        if download is False or (download is None and _offline()):
            raise _missing_inception("offline")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
        except Exception as exc:
            if path.exists():
                path.unlink()
            raise _missing_inception(f"download failed: {type(exc).__name__}: {str(exc)[:120]}") from exc
    try:
        # Validate with weights_only=True (plain tensors only) before torch-fidelity reads the same file
        # with its own torch.load (weights_only=False, which it hard-codes).
        torch.load(path, map_location="cpu", weights_only=True)
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    except Exception as exc:
        raise WeightsMissingError(
            f"{path} is not a valid Inception-v3 FID weights file ({type(exc).__name__}: {str(exc)[:160]}).",
            f"Delete it and download {INCEPTION_URL} again to that path.",
        ) from exc
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = net.to(device)

    def fn(images: torch.Tensor) -> torch.Tensor:
        x = images.to(device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return net(x.contiguous())[0]

    return Extractor("inception", "fid", "FID (Inception-v3)", "KID (Inception-v3)", f"inception-{INCEPTION_FILE[:-4]}", fn, batch_size=64)


def judge_extractor(data_cfg, device=None, progress=None) -> Extractor:
    """Penultimate features of the dataset's judge CNN (core.metrics.judge), the offline substitute."""
    from core.metrics.judge import get_judge

    judge = get_judge(data_cfg, device=device, progress=progress)
    key = judge.info.get("key") or judge.info.get("dataset", "judge")
    weights = judge.info.get("weights_sha1")  # the data key alone would survive a retrain (get_judge(retrain=True))
    cache_id = f"judge-{key}" + (f"-w{weights}" if weights else "")
    return Extractor("judge", "fd_judge", "FD (judge CNN features)", "KD (judge CNN features)", cache_id, judge.features, batch_size=512)


def get_extractor(kind: str = "auto", data_cfg=None, device=None, progress=None) -> tuple[Extractor, str]:
    """(extractor, note): ``auto`` = Inception when its weights are available, else the judge."""
    if kind not in EXTRACTORS:
        raise ConfigError(f"Unknown feature extractor '{kind}'.", f"Choose one of: {', '.join(EXTRACTORS)}.")
    if kind in ("auto", "inception"):
        try:
            return load_inception(device), ""
        except WeightsMissingError as exc:
            if kind == "inception":
                raise
            note = f"FID unavailable, substitute used: {exc}"
    else:
        note = "judge CNN features requested"
    if data_cfg is None:
        raise ConfigError("The judge extractor needs the dataset config.", "Pass data_cfg.")
    from core.metrics.judge import train_source

    # the same DataConfig as the study/page: with judge_per_class > 0 the judge trains on the judge split only
    return judge_extractor(data_cfg, device, progress), f"{note}; judge CNN trained on the {train_source(data_cfg)}"


# ---------------------------------------------------------------------- references
@dataclass
class Reference:
    mu: np.ndarray
    sigma: np.ndarray
    kid_features: np.ndarray  # a fixed random sample of reference features (≤ kid_max)
    n: int
    class_mu: np.ndarray  # (C, D)
    class_sigma: np.ndarray  # (C, D, D) float32
    class_n: np.ndarray  # (C,)
    path: Path | None = None
    cached: bool = False  # True when read from disk instead of extracted


def fingerprint(images: ImageSet) -> str:
    """A cheap content hash: shape, labels and a strided sample of pixels."""
    h = hashlib.sha1(json.dumps([REF_VERSION, list(images.images.shape), images.classes]).encode())
    h.update(images.labels.numpy().tobytes())
    h.update(images.images[:: max(1, len(images) // 512)].numpy().tobytes())
    return h.hexdigest()[:12]


def reference_path(extractor: Extractor, name: str, images: ImageSet) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{name}-{fingerprint(images)}__{extractor.cache_id}")
    return cache_dir() / "gen_refs" / f"{safe}.npz"


def reference_stats(extractor: Extractor, images: ImageSet, name: str, kid_max: int = 2000) -> Reference:
    """Statistics of the reference split ``name`` (e.g. "digits-train"), cached on disk."""
    path = reference_path(extractor, name, images)
    if path.exists():
        try:
            z = np.load(path)
            return Reference(z["mu"], z["sigma"], z["kid_features"], int(z["n"]), z["class_mu"], z["class_sigma"], z["class_n"], path, True)
        except Exception:  # a damaged cache file is recomputed, never trusted
            pass
    feats = extractor.features(images.images)
    mu, sigma = feature_stats(feats)
    g = np.random.default_rng(0)
    kid_features = feats[np.sort(g.permutation(len(feats))[:kid_max])].astype(np.float32)
    C, D = images.num_classes, feats.shape[1]
    class_mu, class_sigma, class_n = np.zeros((C, D)), np.zeros((C, D, D), np.float32), np.zeros(C, np.int64)
    labels = images.labels.numpy()
    for c in range(C):
        fc = feats[labels == c]
        class_n[c] = len(fc)
        if len(fc) >= 2:
            m, s = feature_stats(fc)
            class_mu[c], class_sigma[c] = m, s
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, mu=mu, sigma=sigma, kid_features=kid_features, n=len(feats), class_mu=class_mu, class_sigma=class_sigma, class_n=class_n)
    os.replace(tmp, path)
    return Reference(mu, sigma, kid_features, len(feats), class_mu, class_sigma, class_n, path, False)


def generation_metrics(extractor: Extractor, reference: ImageSet, reference_name: str, evaluated: ImageSet,
                       kid_subsets: int = 50, kid_subset_size: int = 1000, seed: int = 0) -> dict:
    """The paper's FID setting: X = ``reference`` (the original full train split), Y = ``evaluated``
    (the imbalanced split plus generated images), plus per-class distances of each class's
    generated images to its real class, and KID. Every value comes with its image counts."""
    ref = reference_stats(extractor, reference, reference_name)
    feats = extractor.features(evaluated.images)
    mu, sigma = feature_stats(feats)
    kid_mean, kid_std, kid_m = kid(ref.kid_features, feats, kid_subsets, kid_subset_size, seed)
    labels, generated = evaluated.labels.numpy(), evaluated.provenance != REAL
    per_class = []
    for c in range(evaluated.num_classes):
        fc = feats[(labels == c) & generated]
        value = None
        if len(fc) >= 2 and ref.class_n[c] >= 2:
            value = frechet_distance(ref.class_mu[c], ref.class_sigma[c], *feature_stats(fc))
        per_class.append({"class": evaluated.classes[c], "value": value, "n_images": int(len(fc)), "n_reference": int(ref.class_n[c])})
    return {
        "extractor": extractor.name,
        "key": extractor.key,
        "label": extractor.label,
        extractor.key: frechet_distance(ref.mu, ref.sigma, mu, sigma),
        "n_images": int(len(feats)),
        "n_reference": int(ref.n),
        "kid": kid_mean,
        "kid_std": kid_std,
        "kid_label": extractor.kid_label,
        "kid_subset_size": kid_m,
        "kid_subsets": kid_subsets,
        "per_class": per_class,
    }
