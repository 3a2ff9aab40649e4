"""Imbalance profiles: how many training images each class keeps.

Every profile is defined on a *minority rank*: rank 0 is the most reduced class,
rank C-1 the least. ``minority_order`` maps classes to ranks: ``index`` (class i has
rank i, the paper's Table 1 where airplane keeps 500 and truck 5000), ``reversed``
(class 0 keeps the most, the usual CIFAR-10-LT layout) or ``shuffled`` with the seed.

With n_c the images class c has, r its rank and C the class count:

* ``full``        keep n_c
* ``paper``       n_c·(r+1)/C                          (the paper's Eq. 10 / Table 1)
* ``linear``      n_c·(1/ρ + (1−1/ρ)·r/(C−1))           (ratio ρ = max/min; ρ = C is ``paper``)
* ``exponential`` n_c·ρ^(−(C−1−r)/(C−1))                (CIFAR-10-LT: n·ρ^(−i/(C−1)))
* ``step``        n_c/ρ for the ⌈μ·C⌉ lowest ranks, n_c otherwise (μ = minority_fraction)
* ``custom``      explicit per-class counts
* ``balanced``    every class cut to min_c n_c (or the one count given)

Each class keeps the first k images of a permutation fixed by (subset seed, class), so
a smaller count is always a subset of a larger one under the same seed. The subset seed
is ``cfg.subset_seed`` when set, else ``cfg.seed``; the minority order (which classes are
reduced, ``shuffled``) always follows ``cfg.seed``, so a study can draw a new subset per
seed while the minority classes stay the same.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.data.imageset import ImageSet
from core.errors import ConfigError, DataError

PROFILES = ["full", "paper", "linear", "exponential", "step", "custom", "balanced"]
ORDERS = ["index", "reversed", "shuffled"]


def minority_ranks(num_classes: int, order: str, seed: int) -> list[int]:
    """rank[c] for every class c; rank 0 is the most reduced class."""
    if order == "index":
        return list(range(num_classes))
    if order == "reversed":
        return list(reversed(range(num_classes)))
    if order == "shuffled":
        perm = np.random.default_rng(seed).permutation(num_classes)
        ranks = [0] * num_classes
        for rank, c in enumerate(perm):
            ranks[int(c)] = rank
        return ranks
    raise ConfigError(f"Unknown minority order '{order}'.", f"Choose one of: {', '.join(ORDERS)}.")


def target_counts(available: list[int], cfg) -> list[int]:
    """Per-class counts the profile keeps, given each class's available count."""
    C = len(available)
    profile, ratio = cfg.profile, float(cfg.ratio)
    if profile not in PROFILES:
        raise ConfigError(f"Unknown imbalance profile '{profile}'.", f"Choose one of: {', '.join(PROFILES)}.")
    empty = [i for i, n in enumerate(available) if n == 0]
    if empty:
        raise DataError(f"Class index {empty} has no training images.", "Every class needs at least one image.")
    if profile in ("linear", "exponential", "step") and not (ratio >= 1.0 and math.isfinite(ratio)):
        raise ConfigError(f"Imbalance ratio {cfg.ratio} is below 1.", "The ratio is max/min class size: use a value >= 1 (e.g. 10 or 100).")
    ranks = minority_ranks(C, cfg.minority_order, cfg.seed)
    denom = max(C - 1, 1)
    if profile == "full":
        counts = list(available)
    elif profile == "paper":
        counts = [n * (ranks[c] + 1) // C for c, n in enumerate(available)]
    elif profile == "linear":
        counts = [math.floor(n * (1 / ratio + (1 - 1 / ratio) * ranks[c] / denom) + 1e-9) for c, n in enumerate(available)]
    elif profile == "exponential":
        counts = [math.floor(n * ratio ** (-(C - 1 - ranks[c]) / denom) + 1e-9) for c, n in enumerate(available)]
    elif profile == "step":
        if not 0.0 < cfg.minority_fraction < 1.0:
            raise ConfigError(f"minority_fraction {cfg.minority_fraction} must be between 0 and 1.", "Use e.g. 0.5.")
        k = math.ceil(cfg.minority_fraction * C - 1e-9)
        counts = [math.floor(n / ratio + 1e-9) if ranks[c] < k else n for c, n in enumerate(available)]
    elif profile == "custom":
        if not cfg.counts or len(cfg.counts) != C:
            raise ConfigError(
                f"The custom profile needs {C} counts (one per class), got {len(cfg.counts or [])}.",
                f"Pass --counts with {C} comma-separated integers.",
            )
        counts = [int(x) for x in cfg.counts]
    else:  # balanced
        if cfg.counts and len(cfg.counts) not in (1, C):
            raise ConfigError("The balanced profile takes one count.", "Pass --counts N, or none for the smallest class size.")
        counts = [int(cfg.counts[0]) if cfg.counts else min(available)] * C
    too_many = [(c, k, n) for c, (k, n) in enumerate(zip(counts, available)) if k > n]
    if too_many:
        c, k, n = too_many[0]
        raise DataError(
            f"Class {c} is asked to keep {k} images but only {n} exist.",
            f"Lower the count to at most {n}, or use a profile that only removes images.",
        )
    if any(k < 0 for k in counts):
        raise ConfigError("Counts must not be negative.", "Use counts >= 1.")
    # A profile never empties a class: a class with no images cannot be evaluated or filled.
    return [max(1, k) for k in counts]


def subset_seed(cfg) -> int:
    """The seed that picks which images each class keeps: ``subset_seed`` if set, else ``seed``."""
    s = getattr(cfg, "subset_seed", None)
    return int(cfg.seed if s is None else s)


def kept_indices(train: ImageSet, cfg) -> torch.Tensor:
    """Sorted indices into ``train`` of the images the profile keeps."""
    counts = target_counts(train.counts(), cfg)
    keep = []
    for c, k in enumerate(counts):
        idx = torch.nonzero(train.labels == c).flatten()
        g = torch.Generator().manual_seed(subset_seed(cfg) * 1_000_003 + c)
        keep.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.sort(torch.cat(keep)).values


def apply_profile(train: ImageSet, cfg) -> ImageSet:
    """The imbalanced training split: class c keeps ``target_counts(...)[c]`` images."""
    return train.subset(kept_indices(train, cfg))


def dropped_by_profile(train: ImageSet, cfg) -> ImageSet:
    """The real train images the profile removed: never seen by a model trained on the profile."""
    mask = torch.ones(len(train), dtype=torch.bool)
    mask[kept_indices(train, cfg)] = False
    return train.subset(torch.nonzero(mask).flatten())


def most_reduced_classes(train_counts: list[int], full_counts: list[int], fraction: float = 0.3) -> list[int]:
    """Classes the profile shrank most (kept/available ascending), for minority-class F1."""
    kept = [k / max(n, 1) for k, n in zip(train_counts, full_counts)]
    order = sorted(range(len(kept)), key=lambda c: (kept[c], c))
    m = max(1, round(fraction * len(kept)))
    if kept[order[0]] >= 1.0 - 1e-9:  # nothing was reduced: fall back to the smallest classes
        order = sorted(range(len(train_counts)), key=lambda c: (train_counts[c], c))
    return sorted(order[:m])
