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

Rule (issue 17): a row has converged when its last doubling of steps, S/2 → S, gained less than
``gain`` accuracy (default 0.01 = 1 point), on the mean over seeds.
"""

from __future__ import annotations

import math

CONVERGED_GAIN = 0.01  # accuracy (a share): the last doubling must gain less than this
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


def convergence(curve: list[dict], gain: float = CONVERGED_GAIN) -> dict:
    """{converged, last_gain, rule}: converged when the curve's last two points are a doubling
    (S/2 → S, up to rounding) and the accuracy gained over it is below ``gain``."""
    rule = f"the last doubling of steps gained < {gain * 100:g} accuracy point(s) (mean over seeds)"
    if len(curve) < 2 or curve[-1].get("accuracy") is None or curve[-2].get("accuracy") is None:
        return {"converged": False, "last_gain": None, "rule": rule + "; too few curve points to tell"}
    a, b = curve[-2], curve[-1]
    if b["steps"] > 2 * a["steps"] + 1:
        return {"converged": False, "last_gain": None, "rule": rule + f"; the points {a['steps']} and {b['steps']} are not a doubling"}
    last_gain = float(b["accuracy"]) - float(a["accuracy"])
    return {"converged": last_gain < gain, "last_gain": last_gain, "rule": rule}


def along_curve(method: dict[int, dict[int, float]], reference: dict[int, dict[int, float]]) -> list[dict]:
    """The mean paired accuracy difference at every steps value both curves have, over the seeds
    both have there: method/reference map steps -> {seed: accuracy}."""
    out = []
    for steps in sorted(set(method) & set(reference)):
        seeds = sorted(set(method[steps]) & set(reference[steps]))
        if seeds:
            out.append({"steps": steps, "diff": sum(method[steps][s] - reference[steps][s] for s in seeds) / len(seeds)})
    return out


def sign_changes(points: list[dict]) -> bool:
    """Whether the difference changes sign along the curve (exact zeros are ignored)."""
    signs = {d["diff"] > 0 for d in points if d["diff"] != 0}
    return len(signs) > 1
