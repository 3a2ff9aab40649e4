"""Statistics over seeds: mean, std, Student-t 95 % confidence intervals, paired verdicts.

What the CI covers: the spread between seeds, i.e. training randomness (initialisation,
batch order, augmentation) and, when each seed draws its own imbalanced subset, the choice
of subset. It does **not** cover the finite test set; ``binomial_ci`` (Wilson) gives that
part for an accuracy measured on n test images, ``binomial_halfwidth`` half its width.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats as _st

CONFIDENCE = 0.95


def summary(values: Iterable[float | None]) -> dict:
    """{"mean", "std", "ci95", "n"} over the non-missing values.

    std is the sample standard deviation (ddof = 1); ci95 = mean ± t_{0.975, n-1}·std/√n
    (Student t), or None with fewer than 2 values. Empty input gives mean/std None, n 0.
    """
    v = np.array([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], dtype=float)
    n = int(len(v))
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = float(v.mean())
    if n < 2:
        return {"mean": mean, "std": None, "ci95": None, "n": 1}
    std = float(v.std(ddof=1))
    half = float(_st.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}


def verdict(ci95: list[float] | None) -> str:
    """"better" / "worse" when the CI of (method − reference) excludes 0, "inconclusive" when it
    covers 0 (a difference was not detected; that is not evidence of equality), "n/a" without a CI."""
    if ci95 is None:
        return "n/a"
    lo, hi = ci95
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "inconclusive"


def paired(method: dict[int, float], reference: dict[int, float]) -> dict:
    """Paired comparison on the seeds both have: {"n", "diff_mean", "ci95", "verdict", "seeds"}.

    ``method`` and ``reference`` map seed -> metric. The differences d_s = m_s − r_s are
    summarised like any other per-seed values (a paired t interval).
    """
    seeds = sorted(set(method) & set(reference))
    diffs = [method[s] - reference[s] for s in seeds if method[s] is not None and reference[s] is not None]
    s = summary(diffs)
    return {"n": s["n"], "seeds": seeds, "diff_mean": s["mean"], "ci95": s["ci95"], "verdict": verdict(s["ci95"])}


def binomial_ci(p: float | None, n: int) -> list[float] | None:
    """Wilson 95 % interval [lo, hi] of an accuracy p measured on n test images (scipy's
    ``binomtest(k, n).proportion_ci("wilson")`` with k = round(p·n) correct answers; a mean over
    seeds is rounded to the nearest count). The test set's own sampling error, which seeds do not show."""
    if n <= 0 or p is None:
        return None
    ci = _st.binomtest(int(round(p * n)), n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return [float(ci.low), float(ci.high)]


def binomial_halfwidth(p: float | None, n: int) -> float | None:
    """Half the width of ``binomial_ci`` (the Wilson interval is not centred on p: its ± summary)."""
    ci = binomial_ci(p, n)
    return None if ci is None else (ci[1] - ci[0]) / 2
