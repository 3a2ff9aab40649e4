"""Statistics over seeds: mean, std, Student-t 95 % confidence intervals, paired verdicts.

What ``summary``'s CI covers: the spread between seeds, i.e. training randomness
(initialisation, batch order, augmentation) and, when each seed draws its own imbalanced
subset, the choice of subset. It does **not** cover the finite test set; ``binomial_ci``
(Wilson) gives that part for an accuracy measured on n test images, ``binomial_halfwidth``
half its width.

The paired verdicts (``paired_bootstrap``) carry both: a two-level bootstrap resamples the
seeds, then the test images, so a difference has to stand out of training noise *and* of
the luck of which images the test set holds. Every verdict of a study is then corrected
for multiplicity with Holm–Bonferroni (``holm``), and each comparison states the smallest
effect it could have detected (``mde``).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats as _st

CONFIDENCE = 0.95


def summary(values: Iterable[float | None], bounds: tuple[float, float] | None = None) -> dict:
    """{"mean", "std", "ci95", "n"} over the non-missing values.

    std is the sample standard deviation (ddof = 1); ci95 = mean ± t_{0.975, n-1}·std/√n
    (Student t), or None with fewer than 2 values. Empty input gives mean/std None, n 0.
    ``bounds`` (lo, hi) clips the interval to the values the metric can take, e.g. (0, 1) for
    an accuracy: with 3 seeds t_{0.975,2} = 4.30 and an unclipped interval can pass 100 %.
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
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return {"mean": mean, "std": std, "ci95": [lo, hi], "n": n}


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


# ----------------------------------------------------------------------------- paired verdicts
ALPHA = 0.05  # family-wise error rate of a study's verdicts (Holm)
POWER = 0.80  # the power at which ``mde`` is stated
N_BOOT = 4000  # bootstrap replicates (the p-value's resolution is 1/(N_BOOT+1))
VERDICT_RULE = (f"paired two-level bootstrap ({N_BOOT} replicates: seeds resampled, then test images), two-sided p; "
                f"Holm-Bonferroni over every verdict of the study at alpha={ALPHA}; mde = (z_(1-alpha/(2m)) + z_{POWER:.2f})*SE, "
                f"the Bonferroni level being Holm's strictest step")


def _boot_stats(D: np.ndarray, shared: bool, n_boot: int, rng: np.random.Generator, chunk: int = 250) -> np.ndarray:
    """Bootstrap replicates of mean_s mean_i D[s, i] (D: seeds × test images of per-image
    differences c_method − c_reference ∈ {−1, 0, 1}).

    Level 1 draws n seeds with replacement (multinomial counts k_s). Level 2 resamples the
    test images with multinomial weights w_i (Σw = N). When every seed tested the same images
    (``shared``), one draw of w serves all seeds of a replicate: the test set is one sample of
    the image population, so its luck is common to every seed and must not average out over
    seeds. Otherwise each seed's images are resampled on their own.
    """
    n, N = D.shape
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        k = rng.multinomial(n, np.full(n, 1.0 / n), size=b) / n  # b × n seed weights, each row sums to 1
        if shared:
            w = rng.multinomial(N, np.full(N, 1.0 / N), size=b) / N  # b × N image weights
            out[start:start + b] = np.einsum("bi,bi->b", w, k @ D)
        else:
            per_seed = np.stack([rng.multinomial(N, np.full(N, 1.0 / N), size=b) @ D[s] / N for s in range(n)], axis=1)
            out[start:start + b] = np.einsum("bs,bs->b", k, per_seed)
    return out


def paired_bootstrap(correct: dict[int, np.ndarray], reference: dict[int, np.ndarray], labels_equal: bool = True,
                     n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Paired comparison of two methods' accuracies from their per-image correctness.

    ``correct`` / ``reference`` map seed -> a boolean vector over the test images (the same
    images, in the same order, for both methods of one seed). Returns {"n", "seeds",
    "diff_mean", "ci95", "p", "se"}: the observed mean over seeds of acc_m − acc_r, its
    bootstrap percentile 95 % interval, the two-sided bootstrap p-value
    p = min(1, 2·min(#{d* ≤ 0} + 1, #{d* ≥ 0} + 1) / (B + 1)) and the bootstrap standard error.
    """
    seeds = sorted(set(correct) & set(reference))
    if not seeds:
        return {"n": 0, "seeds": [], "diff_mean": None, "ci95": None, "p": None, "se": None}
    D = np.stack([np.asarray(correct[s], dtype=np.float64) - np.asarray(reference[s], dtype=np.float64) for s in seeds])
    obs = float(D.mean())
    d = _boot_stats(D, labels_equal, n_boot, np.random.default_rng(seed))
    lo, hi = np.quantile(d, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    p = min(1.0, 2 * min(int((d <= 0).sum()) + 1, int((d >= 0).sum()) + 1) / (n_boot + 1))
    return {"n": len(seeds), "seeds": seeds, "diff_mean": obs, "ci95": [float(lo), float(hi)], "p": float(p), "se": float(d.std(ddof=1))}


def paired_t(method: dict[int, float], reference: dict[int, float]) -> dict:
    """The fallback when per-image results are missing (an older study): a paired t-test over
    seeds (scipy.stats.ttest_rel). It carries training noise only, not test-set noise."""
    r = paired(method, reference)
    if r["n"] < 2:
        return {**r, "p": None, "se": None}
    seeds = r["seeds"]
    m, ref = np.array([method[s] for s in seeds]), np.array([reference[s] for s in seeds])
    diff = m - ref
    se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
    if se == 0:  # a constant difference: the t statistic is infinite (or 0/0 when the difference is 0)
        p = 1.0 if diff.mean() == 0 else 0.0
    else:
        p = float(_st.ttest_rel(m, ref).pvalue)
    return {**r, "p": p, "se": se}


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values, in the input order (None stays None and does not count).

    Sorted ascending p_(1) ≤ … ≤ p_(m): p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)).
    Written here because scipy.stats offers only Benjamini–Hochberg (false_discovery_control)
    and statsmodels' multipletests is not a dependency of the lab.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for j, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - j) * pvalues[i]))
        out[i] = running
    return out


def mde(se: float | None, m: int = 1, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Minimum detectable effect (same units as ``se``) of a two-sided test at level alpha/m
    (Bonferroni: Holm's strictest step) with the given power: (z_{1−α/(2m)} + z_power)·SE."""
    if se is None or m < 1:
        return None
    return float((_st.norm.ppf(1 - alpha / (2 * m)) + _st.norm.ppf(power)) * se)


def holm_verdict(diff_mean: float | None, p_holm: float | None, alpha: float = ALPHA) -> str:
    """"better" / "worse" when the Holm-adjusted p is below alpha, else "inconclusive" (not detected)."""
    if diff_mean is None or p_holm is None:
        return "n/a"
    if p_holm < alpha:
        return "better" if diff_mean > 0 else "worse"
    return "inconclusive"


def describe_verdict(entry: dict | None) -> str:
    """How a page or table words one ``vs`` entry, e.g. "inconclusive (could not detect < 4.1 pts)";
    "under-trained" comparisons name the rows that had not converged, and a difference whose sign
    changes along the budget curves says so."""
    if not entry:
        return "–"
    v = entry.get("verdict") or "n/a"
    if v == "inconclusive" and entry.get("mde") is not None:
        text = f"inconclusive (could not detect < {entry['mde'] * 100:.1f} pts)"
    elif v in ("better", "worse") and entry.get("p_holm") is not None:
        text = f"{v} (p_holm = {entry['p_holm']:.3g})"
    elif v == "under-trained":
        text = "under-trained, not concluded" + (f" ({', '.join(entry['not_converged'])} not converged)" if entry.get("not_converged") else "")
    elif v == "below gate":  # core.gate: the generator's fill failed its gate, so the gap is not the method's
        text = "below gate: no verdict (the generator's fill failed its gate)"
    elif v == "ungated":
        text = "ungated: no verdict (the generator gate was not measured)"
    else:
        text = v
    if entry.get("sign_changes"):
        text += "; the sign changes along the budget curve"
    return text
