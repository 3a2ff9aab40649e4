"""Statistics over seeds: mean, std, Student-t 95 % confidence intervals, paired verdicts.

What ``summary``'s CI covers: the spread between seeds, i.e. training randomness
(initialisation, batch order, augmentation) and, when each seed draws its own imbalanced
subset, the choice of subset. It does **not** cover the finite test set; ``binomial_ci``
(Wilson) gives that part for an accuracy measured on n test images, ``binomial_halfwidth``
half its width.

The paired verdicts (``paired_test``) carry both: a seed-level t test whose variance adds
the test-set term all seeds share (a test-image bootstrap), so a difference has to stand out
of training noise *and* of the luck of which images the test set holds. Every verdict of a study is then corrected
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
N_BOOT = 1000  # test-image bootstrap replicates behind the shared test-set term
ENDPOINTS = ("accuracy", "minority_f1")  # the metrics every paired verdict is computed for (both in the Holm family)
VERDICT_RULE = (f"paired seed-level t test on the per-seed differences, its variance plus the test-set term all seeds share "
                f"(a test-image bootstrap, {N_BOOT} replicates: the mean cross-seed covariance of the replicates' differences), "
                f"n_seeds - 1 degrees of freedom, two-sided p; accuracy and minority F1 both; each unordered pair once; "
                f"Holm-Bonferroni over every verdict of the study at alpha={ALPHA}; mde = (t_(1-alpha/(2m)) + t_{POWER:.2f})*SE, "
                f"the Bonferroni level being Holm's strictest step")


def weighted_metric(pred: np.ndarray, labels: np.ndarray, w: np.ndarray, metric: str, minority: list[int] | None = None) -> np.ndarray:
    """The metric of predictions ``pred`` (N,) against ``labels`` (N,) under image weights ``w``
    (B × N; ones = the plain metric), one value per row.

    accuracy = Σ_i w_i·[pred_i = y_i] / Σ_i w_i; minority_f1 = mean over the minority classes c of
    F1_c = 2·TP_c / (P_c + T_c) (weighted counts; 0 when class c is neither predicted nor present,
    as core.metrics.classification / scikit-learn)."""
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    if metric == "accuracy":
        return w @ (pred == labels).astype(np.float64) / w.sum(1)
    if metric != "minority_f1":
        raise ValueError(f"unknown endpoint {metric!r}; use one of {ENDPOINTS}")
    if not minority:
        raise ValueError("minority_f1 needs the minority classes")
    out = np.zeros(w.shape[0])
    for c in minority:
        tp = w @ ((pred == c) & (labels == c)).astype(np.float64)
        denom = w @ (pred == c).astype(np.float64) + w @ (labels == c).astype(np.float64)
        out += np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return out / len(minority)


def _common_variance(method: list[np.ndarray], reference: list[np.ndarray], labels: np.ndarray, metric: str, minority,
                     n_boot: int, rng: np.random.Generator, chunk: int = 200) -> float:
    """The variance of the test-set term every seed shares: the test images are one sample of the
    image population, so their luck does not average out over seeds and the seeds' spread cannot
    show it. Each bootstrap replicate draws one set of image weights for every seed (Poisson(1)
    weights, the usual fast stand-in for multinomial ones: a CIFAR test set has 10,000 images); the mean over
    seed pairs s ≠ s' of cov(d*_s, d*_s') is that term (a seed's own test noise is in the seed
    spread already and cancels from a covariance of two seeds). Clipped at 0."""
    n, N = len(method), len(labels)
    reps = np.empty((n_boot, n))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = rng.poisson(1.0, size=(b, N)).astype(np.float64)
        for s in range(n):
            reps[start:start + b, s] = (weighted_metric(method[s], labels, w, metric, minority)
                                        - weighted_metric(reference[s], labels, w, metric, minority))
    cov = np.cov(reps, rowvar=False)
    pairs = [cov[i, j] for i in range(n) for j in range(n) if i != j]
    return max(0.0, float(np.mean(pairs)))


def paired_test(method: dict[int, tuple], reference: dict[int, tuple], metric: str = "accuracy", minority: list[int] | None = None,
                labels_equal: bool = True, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Paired comparison of two methods on one endpoint from their per-image predictions.

    ``method`` / ``reference`` map seed -> (predictions, labels) over the test images (the same
    images, in the same order, for both methods of one seed). With d_s the per-seed difference of
    the metric (method − reference) over the n seeds both have::

        SE² = s_d²/n + V_common            s_d: the sample sd of d_s (training noise and each seed's own test noise)
        V_common                           the test-set term all seeds share (``_common_variance``; 0 when
                                           the seeds tested different images, ``labels_equal`` False)
        df  = n − 1
        p   = 2·P(T_df > |mean d| / SE),   ci95 = mean d ± t_{0.975, df}·SE

    A bootstrap over seeds is far too eager at 3-5 seeds (it rejected 12-18 % of true nulls) and a
    sign-flip test cannot reach p < 0.05 there; the t reference distribution keeps the nominal size
    (tests/test_stats.py: null and power simulations). df = n − 1 for the whole SE is conservative
    where the shared term weighs (it is estimated from N images); Welch-Satterthwaite df were
    measured at 6-7 % rejections at 3 seeds, n − 1 at 4-5 %. Fewer than 2 seeds: no test (p None).
    Returns {"n", "seeds", "diff_mean", "ci95", "p", "se", "df", "metric"}.
    """
    seeds = sorted(set(method) & set(reference))
    empty = {"n": len(seeds), "seeds": seeds, "diff_mean": None, "ci95": None, "p": None, "se": None, "df": None, "metric": metric}
    if not seeds:
        return empty
    pm = [np.asarray(method[s][0]) for s in seeds]
    pr = [np.asarray(reference[s][0]) for s in seeds]
    ls = [np.asarray(method[s][1]) for s in seeds]
    ones = np.ones((1, len(ls[0])))
    d = np.array([float(weighted_metric(pm[i], ls[i], ones, metric, minority)[0] - weighted_metric(pr[i], ls[i], ones, metric, minority)[0])
                  for i in range(len(seeds))])
    n, mean = len(d), float(d.mean())
    if n < 2:
        return {**empty, "diff_mean": mean}
    a = float(d.var(ddof=1)) / n
    c = _common_variance(pm, pr, ls[0], metric, minority, n_boot, np.random.default_rng(seed)) if labels_equal else 0.0
    se = math.sqrt(a + c)
    if se == 0:  # a constant difference measured without noise: certain (or exactly 0)
        return {**empty, "diff_mean": mean, "ci95": [mean, mean], "p": 1.0 if mean == 0 else 0.0, "se": 0.0, "df": float(n - 1)}
    df = float(n - 1)
    half = float(_st.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    p = float(2 * _st.t.sf(abs(mean) / se, df))
    return {**empty, "diff_mean": mean, "ci95": [mean - half, mean + half], "p": min(1.0, p), "se": se, "df": float(df)}


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
    if se <= 1e-12:  # a constant difference (up to rounding): the t statistic is infinite (or 0/0 when the difference is 0)
        se = 0.0
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


def mde(se: float | None, m: int = 1, alpha: float = ALPHA, power: float = POWER, df: float | None = None) -> float | None:
    """Minimum detectable effect (same units as ``se``) of a two-sided test at level alpha/m
    (Bonferroni: Holm's strictest step) with the given power: (q_{1−α/(2m)} + q_power)·SE with q the
    quantiles of Student's t at ``df`` degrees of freedom (the normal's z when df is None)."""
    if se is None or m < 1:
        return None
    q = _st.norm.ppf if df is None else (lambda x: _st.t.ppf(x, df))
    return float((q(1 - alpha / (2 * m)) + q(power)) * se)


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
        text = (f"inconclusive (could not detect < {entry['mde']:.3f} F1)" if entry.get("metric") == "minority_f1"
                else f"inconclusive (could not detect < {entry['mde'] * 100:.1f} pts)")
    elif v in ("better", "worse") and entry.get("p_holm") is not None:
        text = f"{v} (p_holm = {entry['p_holm']:.3g})"
    elif v == "under-trained":
        text = "under-trained, not concluded" + (f" ({', '.join(entry['not_converged'])} not converged)" if entry.get("not_converged") else "")
    elif v == "below gate":  # core.study.gate: the generator's fill failed its gate, so the gap is not the method's
        text = "below gate: no verdict (the generator's fill failed its gate)"
    elif v == "ungated":
        text = "ungated: no verdict (the generator gate was not measured)"
    else:
        text = v
    if entry.get("sign_changes"):
        text += "; the sign changes along the budget curve"
    if entry.get("gate_changed"):
        text += f"; ⚠ gate changed after results were seen ({entry['gate_changed']})"
    return text
