"""Share of the imbalance gap a method closes (issue 25): (m − none) / (real − none).

``real`` is the row trained on the real images the profile dropped (the bound a perfect generator
would reach, core.data.pool); ``none`` the imbalanced set as it is. Per endpoint (accuracy,
minority F1), the share is the ratio of the mean paired differences over the seeds all three rows
have. Its 95 % interval is a percentile bootstrap: each replicate resamples the seeds and, with
one set of Poisson(1) weights shared by every seed and row, the test images (the rows tested the
same images), so it carries training and test-set noise like the verdicts do. A share is only
stated where real − none is itself detected (its verdict is better or worse after Holm): a ratio
over an undetected gap is noise over noise, and reads "n/a".
"""

from __future__ import annotations

import numpy as np

from core.study.stats import CONFIDENCE, weighted_metric

N_BOOT = 1000


def _replicates(rows: list[dict], metric: str, minority, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """(observed per-seed metric (3 × n), replicate per-seed metrics (3 × B × n)) of the rows m, none, real, or None."""
    seeds = sorted(set.intersection(*(set(r) for r in rows)))
    if len(seeds) < 1:
        return None
    labels = rows[0][seeds[0]][1]
    if not all(np.array_equal(r[s][1], labels) for r in rows for s in seeds):  # different test images per seed: seeds only
        obs = np.array([[float(weighted_metric(r[s][0], r[s][1], np.ones((1, len(r[s][1]))), metric, minority)[0]) for s in seeds] for r in rows])
        return obs, np.repeat(obs[:, None, :], n_boot, axis=1)
    w = rng.poisson(1.0, size=(n_boot, len(labels))).astype(np.float64)
    ones = np.ones((1, len(labels)))
    obs = np.array([[float(weighted_metric(r[s][0], labels, ones, metric, minority)[0]) for s in seeds] for r in rows])
    reps = np.stack([np.stack([weighted_metric(r[s][0], labels, w, metric, minority) for s in seeds], axis=1) for r in rows])
    return obs, reps


def share_of_gap(method: dict, none: dict, real: dict, metric: str = "accuracy", minority: list[int] | None = None,
                 detected: bool = True, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """{share, ci95, detected, text}: ``method``/``none``/``real`` map seed -> (predictions, labels);
    ``detected`` says whether real − none was detected (else the share is n/a)."""
    if not detected:
        return {"share": None, "ci95": None, "detected": False, "text": "n/a (real − none not detected)"}
    rng = np.random.default_rng(seed)
    got = _replicates([method, none, real], metric, minority, n_boot, rng)
    if got is None:
        return {"share": None, "ci95": None, "detected": True, "text": "n/a (no seed in common)"}
    obs, reps = got
    den = (obs[2] - obs[1]).mean()
    share = float((obs[0] - obs[1]).mean() / den) if den != 0 else None
    n = obs.shape[1]
    k = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n  # seed weights per replicate
    num_b = np.einsum("bs,bs->b", k, reps[0] - reps[1])
    den_b = np.einsum("bs,bs->b", k, reps[2] - reps[1])
    ok = den_b != 0
    ratios = num_b[ok] / den_b[ok]
    ci = [float(x) for x in np.quantile(ratios, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])] if len(ratios) else None
    text = "n/a" if share is None else f"{share:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    return {"share": share, "ci95": ci, "detected": True, "text": text}
