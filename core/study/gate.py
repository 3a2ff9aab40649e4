"""The generator gate (issues 17 and 25): is a generator's fill good enough to judge a method by?

A fill made by a generator (CFG, SD) is only worth a verdict when its tail images are of the
right class, look like real images and are not copies of the few training images. Per fill
and seed the study measures, on the **tail** (the ``tail_classes`` classes given the most
generated images; ties broken by class index, ascending)::

    tail_consistency  share of the tail's generated images the judge CNN (core.metrics.judge) assigns to
                      the class they were conditioned on
    precision         improved precision (Kynkäänniemi et al. 2019) of the tail's generated images
                      against half B of the held-out real tail images (core.data.pool)
    near_copy_rate    near-copy rate of the tail's generated images: Σ_c n_c·r_c / Σ_c n_c over the
                      tail classes c with a calibrated threshold (r_c: class c's rate, n_c its
                      generated images), i.e. copies / images over those classes  ≤ threshold

**Calibrated on real images** (issue 25). The same judge measures real images the generator never
saw, seed by seed: ``real_tail_consistency`` on the held-out real tail images and ``real_precision``
of their half A against the same half B. A seed passes when its tail_consistency ≥ relative ×
real_tail_consistency and its precision ≥ relative × real_precision (relative = 0.9 by default)
and its near-copy rate holds the absolute threshold. Where a real figure could not be measured
the absolute threshold (``tail_consistency``, ``precision``) stands in, and the rule says so. A
row's gate (``row_gate``) passes only when **every seed** passes: a failing seed is not hidden in
a mean. A figure that could not be measured (None) cannot fail the gate; then the gate is "not
measured" (passed None) unless another figure fails. A comparison is "at the threshold" within
1e-12.

Pure functions, no training: the study (core.study.cells, core.study.rows) measures and stores.
"""

from __future__ import annotations

import math

from core.errors import ConfigError

GATED_FILLS = ("cfg", "sd", "real")  # fills made by a generator, and `real` (it must pass its own gate); oversample, mixup, cutmix are not gated
DEFAULTS = {"tail_consistency": 0.8, "precision": 0.5, "near_copy_rate": 0.2, "tail_classes": 3, "relative": 0.9}
RELATIVE = {"tail_consistency": "real_tail_consistency", "precision": "real_precision"}  # figure -> the real images' figure it is held to
FIGURES = ("tail_consistency", "precision", "near_copy_rate")
EPS = 1e-12  # "at the threshold" tolerance (a mean over seeds carries rounding)
BELOW_GATE = "below_gate"  # the row state of a row whose fill failed its gate (not a failure)
VERDICT_BELOW = "below gate"  # the verdict of a comparison with such a row (outside Holm)
VERDICT_UNGATED = "ungated"  # the verdict of a comparison with a row whose gate was not measured (outside Holm)


def thresholds(options: dict | None = None) -> dict:
    """The study's gate options (``[gate]``) over DEFAULTS; ConfigError on unknown keys or bad values."""
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"gate = {options!r} must be a table of thresholds.", "Use e.g. [gate] tail_consistency = 0.8.")
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"Unknown [gate] option(s): {', '.join(unknown)}.", f"Known: {', '.join(DEFAULTS)}.")
    out = {**DEFAULTS, **options}
    for k in (*FIGURES, "relative"):
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) or not 0.0 <= float(v) <= 1.0:
            raise ConfigError(f"[gate] {k} = {v!r} must be a number in [0, 1].",
                              f"Use a share of images, e.g. the default {k} = {DEFAULTS[k]}.")
        out[k] = float(v)
    k = out["tail_classes"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"[gate] tail_classes = {k!r} must be a whole number ≥ 1.", "Use the default 3: the 3 most-filled classes.")
    return out


def tail_classes(n_generated_per_class: list[int], k: int = DEFAULTS["tail_classes"]) -> list[int]:
    """The k classes given the most generated images, most first; ties broken by class index
    (ascending). Classes given none are never in the tail (fewer than k may come back)."""
    ranked = sorted(range(len(n_generated_per_class)), key=lambda c: (-int(n_generated_per_class[c]), c))
    return [c for c in ranked if int(n_generated_per_class[c]) > 0][:k]


def tail_near_copy_rate(per_class: dict, names: list[str]) -> float | None:
    """Σ n_c·r_c / Σ n_c over the named classes whose near-copy rate r_c was calibrated (novelty's
    ``per_class``: {name: {"n", "near_copy_rate"}}); None when none was."""
    scored = [(e["n"], e["near_copy_rate"]) for name in names if (e := per_class.get(name)) and e.get("near_copy_rate") is not None
              and e.get("n")]
    n = sum(c for c, _ in scored)
    return sum(c * r for c, r in scored) / n if n else None


def _clean(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def measure_gate(tail: list[str], n_tail: int, tail_consistency: float | None, precision: float | None,
                 near_copy_rate: float | None, real_tail_consistency: float | None = None, real_precision: float | None = None,
                 n_real: int = 0) -> dict:
    """The figures of one fill's gate and the real images' figures it is held to (see the module
    docstring), NaN read as not measured."""
    return {"tail": list(tail), "n_tail": int(n_tail), "tail_consistency": _clean(tail_consistency), "precision": _clean(precision),
            "near_copy_rate": _clean(near_copy_rate), "real_tail_consistency": _clean(real_tail_consistency),
            "real_precision": _clean(real_precision), "n_real": int(n_real)}


def limits(figures: dict, t: dict) -> dict:
    """Each figure's threshold for these figures: relative × the real images' figure where it was
    measured, else the absolute threshold; the near-copy rate's is always absolute."""
    out = {}
    for k in FIGURES:
        real = figures.get(RELATIVE[k]) if k in RELATIVE else None
        out[k] = t["relative"] * real if real is not None else t[k]
    return out


def rule_text(t: dict, tail: list[str] | None = None, over: str = "", figures: dict | None = None) -> str:
    """e.g. "tail consistency ≥ 0.9 × real 0.940 = 0.846 (classes 0, 1, 2), precision ≥ 0.9 × real 0.700 = 0.630,
    tail near-copy rate ≤ 0.2"; the absolute threshold where no real figure was measured."""
    classes = f" (classes {', '.join(map(str, tail))})" if tail else ""
    figures = figures or {}

    def part(k: str, words: str) -> str:
        real = figures.get(RELATIVE[k])
        if real is None:
            return f"{words} ≥ {t[k]:g}"
        return f"{words} ≥ {t['relative']:g} × real {real:.3f} = {t['relative'] * real:.3f}"

    return f"{over}{part('tail_consistency', 'tail consistency')}{classes}, {part('precision', 'precision')}, tail near-copy rate ≤ {t['near_copy_rate']:g}"


def _holds(figure: str, value: float, limit: float) -> bool:
    return value <= limit + EPS if figure == "near_copy_rate" else value >= limit - EPS


def gate_verdict(figures: dict, t: dict | None = None, over: str = "") -> dict:
    """{passed, tail_consistency, precision, near_copy_rate, rule, limits} (and the figures' other keys):
    passed False when a measured figure misses its threshold (``limits``), None when none misses but
    one is not measured, else True. ``over`` prefixes the rule."""
    t = thresholds(t)
    lim = limits(figures, t)
    measured = {k: figures.get(k) for k in FIGURES if figures.get(k) is not None}
    missing = [k for k in FIGURES if k not in measured]
    failed = [k for k, v in measured.items() if not _holds(k, v, lim[k])]
    rule = rule_text(t, figures.get("tail"), over, figures)
    passed = False if failed else (None if missing else True)
    if passed is None:
        rule += f"; not measured: {', '.join(k.replace('_', ' ') for k in missing)}"
    return {**figures, "passed": passed, **{k: figures.get(k) for k in FIGURES}, "rule": rule, "limits": lim,
            "thresholds": {k: t[k] for k in (*FIGURES, "relative")}}


def not_measured(reason: str) -> dict:
    """The gate of a generator fill that could not be measured, e.g. "generation_metrics = false"."""
    return {"passed": None, **{k: None for k in FIGURES}, "rule": f"not measured: {reason}"}


def row_gate(per_seed: dict, t: dict | None = None) -> dict:
    """A row's gate from its fill's per-seed figures ({seed: gate}): every seed re-judged with the
    thresholds ``t`` (so a study re-gated on resume gets the new ones), passed only when every seed
    passes (False when any fails, None when none fails but one is not measured); the figures shown
    are the means over the seeds that measured them, the real images' beside them, and ``per_seed``."""
    t = thresholds(t)
    per_seed = {str(s): g for s, g in per_seed.items() if isinstance(g, dict)}
    if not per_seed:
        return {**not_measured("no fill of this row finished"), "per_seed": {}}
    keys = (*FIGURES, *RELATIVE.values())
    means = {}
    for k in keys:
        vals = [g[k] for g in per_seed.values() if g.get(k) is not None]
        means[k] = sum(vals) / len(vals) if vals else None
    if all(means[k] is None for k in FIGURES):  # e.g. generation_metrics = false: every seed says why
        reasons = list(dict.fromkeys(g.get("rule", "not measured") for g in per_seed.values()))
        return {"passed": None, **means, "rule": "; ".join(reasons), "per_seed": per_seed}
    judged = {s: (gate_verdict(g, t, f"seed {s}: ") if any(g.get(k) is not None for k in FIGURES) else g) for s, g in per_seed.items()}
    seeds_passed = [g.get("passed") for g in judged.values()]
    passed = False if any(p is False for p in seeds_passed) else (None if any(p is None for p in seeds_passed) else True)
    tail = next((g["tail"] for g in per_seed.values() if g.get("tail")), None)
    rule = f"every seed ({', '.join(per_seed)}): " + rule_text(t, tail)[0].lower() + rule_text(t, tail)[1:] + (
        f"; each held to {t['relative']:g} × that seed's real figures" if means.get("real_tail_consistency") is not None else "")
    return {"tail": tail, "passed": passed, **means, "rule": rule, "per_seed": judged, "thresholds": {k: t[k] for k in (*FIGURES, "relative")},
            "failed_seeds": [s for s, g in judged.items() if g.get("passed") is False]}


def gate_mark(*gates: dict | None) -> str | None:
    """The verdict a comparison gets instead of better/worse/inconclusive when a row of it is gated:
    "below gate" if a gate failed, "ungated" if one was not measured, else None (a normal verdict)."""
    passed = [g.get("passed") for g in gates if isinstance(g, dict)]
    if any(p is False for p in passed):
        return VERDICT_BELOW
    if any(p is None for p in passed):
        return VERDICT_UNGATED
    return None


def gate_symbol(gate: dict | None) -> str:
    """How a table shows a gate: ✓ passed, ✗ below, "not measured", "" for an ungated method."""
    if not isinstance(gate, dict):
        return ""
    return {True: "✓", False: "✗"}.get(gate.get("passed"), "not measured")


def gate_reason(gate: dict | None) -> str:
    """Why a gate did not pass, e.g. "below gate: seed 3: precision 0.380 < 0.549 (0.9 × real 0.610)";
    its rule when it was not measured; "" when it passed or is not a gate."""
    if not isinstance(gate, dict) or gate.get("passed") is True:
        return ""
    if gate.get("passed") is None:
        return gate.get("rule") or "not measured"
    seeds = {s: g for s, g in (gate.get("per_seed") or {}).items() if isinstance(g, dict) and g.get("passed") is False}
    judged = [(f"seed {s}: ", g) for s, g in seeds.items()] or [("", gate)]
    t = thresholds({k: v for k, v in (gate.get("thresholds") or {}).items() if k in (*FIGURES, "relative")})
    words = {"tail_consistency": ("tail consistency", "<"), "precision": ("precision", "<"), "near_copy_rate": ("tail near-copy rate", ">")}
    parts = []
    for prefix, g in judged:
        lim = limits(g, t)
        misses = []
        for k in FIGURES:
            if g.get(k) is None or _holds(k, g[k], lim[k]):
                continue
            real = g.get(RELATIVE.get(k, ""))
            how = f"{lim[k]:.3f} ({t['relative']:g} × real {real:.3f})" if real is not None else f"{lim[k]:g}"
            misses.append(f"{words[k][0]} {g[k]:.3f} {words[k][1]} {how}")
        parts.append(prefix + ", ".join(misses))
    return "below gate: " + "; ".join(parts)


def regate_words(change: dict) -> str:
    """One entry of a study's ``regated`` history (core.study.run) in words: 'tail_consistency 0.8 → 0.3'."""
    return ", ".join(f"{k} {change['from'][k]:g} → {change['to'][k]:g}" for k in change["to"] if change["from"].get(k) != change["to"][k]) or "no change"
