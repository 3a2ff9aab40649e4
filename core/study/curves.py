"""Budget curves: what a classifier reaches at a fraction of the study's optimizer steps, and
whether it has converged.

Mechanism: separate shorter runs. A point at k of the study's S steps is a run of its own with
the same recipe, trained for k steps, its warm-up scaled to W·k/S and its cosine schedule ending
at k (core.train.classifier.lr_at). So each point is what a run of that length reaches, not an
intermediate checkpoint of the long run, whose learning rate has not decayed yet and which
therefore underestimates a short run. The price is compute: points at S/8, S/4, S/2 cost
7/8 of the main run again (1.875× in all for 4 points). A schedule-free optimizer or weight
averaging would cost nothing extra but only approximate a shorter run (and the `schedulefree`
package is not in this workplace's index); see BENCHMARKS.md.

Rule (issues 17 and 25): a row has converged when its last doubling of steps, S/2 → S, gained less
than ``gain`` accuracy (default 0.01 = 1 point) **and** less than ``minority_gain`` minority F1
(default 0.02), on the mean over seeds. In a study the curve's points are measured on the
validation split (core.data.loading: reserved before the profile), never on the test split.
"""

from __future__ import annotations

import math

CONVERGED_GAIN = 0.01  # accuracy (a share): the last doubling must gain less than this
CONVERGED_GAIN_MINORITY = 0.02  # minority F1: the last doubling must gain less than this too
CURVE_POINTS = 4  # points in a curve, the full run included (S/8, S/4, S/2, S)


def curve_steps(total: int, points: int = CURVE_POINTS) -> list[int]:
    """The step counts of a curve ending at ``total``: ⌈total / 2^k⌉ for k = points−1 … 0,
    without repeats (a tiny budget gives fewer points: total = 2 → [1, 2])."""
    return sorted({max(1, math.ceil(total / 2 ** k)) for k in range(points)})


def scaled_warmup(warmup: int, steps: int, total: int) -> int:
    """The warm-up of a run of ``steps`` steps when the full run of ``total`` warms up ``warmup``: W·k/S, rounded."""
    return int(round(warmup * steps / max(total, 1)))


def mean_curve(per_seed: dict[int, list[dict]]) -> list[dict]:
    """Per steps value, the mean accuracy and minority F1 over the seeds that have that point:
    [{steps, accuracy, minority_f1, n_seeds}], in increasing steps."""
    by_steps: dict[int, list[dict]] = {}
    for points in per_seed.values():
        for p in points:
            by_steps.setdefault(int(p["steps"]), []).append(p)
    out = []
    for steps in sorted(by_steps):
        ps = by_steps[steps]
        mean = lambda k: None if any(p.get(k) is None for p in ps) else sum(float(p[k]) for p in ps) / len(ps)  # noqa: E731
        out.append({"steps": steps, "accuracy": mean("accuracy"), "minority_f1": mean("minority_f1"), "n_seeds": len(ps)})
    return out


def convergence(curve: list[dict], gain: float = CONVERGED_GAIN, minority_gain: float = CONVERGED_GAIN_MINORITY) -> dict:
    """{converged, last_gain, last_gain_minority, rule}: converged when the curve's last two points are
    a doubling (S/2 → S, up to rounding), the accuracy gained over it is below ``gain`` and the minority
    F1 gained below ``minority_gain`` (a curve without minority F1 is judged on accuracy alone)."""
    rule = (f"the last doubling of steps gained < {gain * 100:g} accuracy point(s) and < {minority_gain:g} minority F1 "
            f"(mean over seeds, validation split)")
    out = {"converged": False, "last_gain": None, "last_gain_minority": None}
    if len(curve) < 2 or curve[-1].get("accuracy") is None or curve[-2].get("accuracy") is None:
        return {**out, "rule": rule + "; too few curve points to tell"}
    a, b = curve[-2], curve[-1]
    if b["steps"] > 2 * a["steps"] + 1:
        return {**out, "rule": rule + f"; the points {a['steps']} and {b['steps']} are not a doubling"}
    last_gain = float(b["accuracy"]) - float(a["accuracy"])
    minority = None if a.get("minority_f1") is None or b.get("minority_f1") is None else float(b["minority_f1"]) - float(a["minority_f1"])
    converged = last_gain < gain and (minority is None or minority < minority_gain)
    return {"converged": converged, "last_gain": last_gain, "last_gain_minority": minority, "rule": rule}


def along_curve(method: dict[int, dict[int, float]], reference: dict[int, dict[int, float]], alpha: float = 0.05) -> list[dict]:
    """The mean paired accuracy difference at every steps value both curves have, over the seeds
    both have there (method/reference map steps -> {seed: accuracy}), with a paired t test over
    those seeds (scipy.stats.ttest_rel; ``detected`` when p < alpha, never with fewer than 2 seeds)."""
    from scipy import stats

    out = []
    for steps in sorted(set(method) & set(reference)):
        seeds = sorted(set(method[steps]) & set(reference[steps]))
        if not seeds:
            continue
        d = [method[steps][s] - reference[steps][s] for s in seeds]
        mean = sum(d) / len(d)
        if len(d) < 2:
            p = None
        elif max(d) - min(d) < 1e-12:  # a constant difference (up to rounding): t is infinite (or 0/0 at 0)
            p = 1.0 if mean == 0 else 0.0
        else:
            p = float(stats.ttest_rel([method[steps][s] for s in seeds], [reference[steps][s] for s in seeds]).pvalue)
        out.append({"steps": steps, "diff": mean, "p": p, "detected": p is not None and p < alpha})
    return out


def sign_changes(points: list[dict]) -> bool:
    """Whether the difference changes sign along the curve where it is detected on both sides: a
    point ahead and a point behind, each with ``detected`` (a point without the key counts as
    detected, for curves built by hand). Noise around 0 is not a sign change."""
    signs = {d["diff"] > 0 for d in points if d["diff"] != 0 and d.get("detected", True)}
    return len(signs) > 1
