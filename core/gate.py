"""The generator gate (issue 17 item 2): is a generator's fill good enough to judge a method by?

A fill made by a generator (CFG, SD) is only worth a verdict when its tail images are of the
right class, look like real images and are not copies of the few training images. Per fill
and seed the study measures, on the **tail** (the ``tail_classes`` classes given the most
generated images; ties broken by class index, ascending)::

    tail_consistency  share of the tail's generated images the judge CNN (core.judge) assigns to
                      the class they were conditioned on                         ≥ threshold
    precision         the fill's improved precision (Kynkäänniemi et al. 2019; all its generated
                      images, core.metrics.novelty.fill_scores)                  ≥ threshold
    near_copy_rate    near-copy rate of the tail's generated images: Σ_c n_c·r_c / Σ_c n_c over the
                      tail classes c with a calibrated threshold (r_c: class c's rate, n_c its
                      generated images), i.e. copies / images over those classes  ≤ threshold

and the gate passes when all three hold. A figure that could not be measured (None) cannot fail
the gate; then the gate passes only if the measured figures hold and it is "not measured"
(passed None) if one is missing. A row's gate (``row_gate``) applies the same thresholds to the
mean over its seeds of each figure. A comparison is "at the threshold" within 1e-12, so a mean
that equals the threshold in exact arithmetic is on the passing side.

Pure functions, no training: the study (core.experiment, core.study_rows) measures and stores.
"""

from __future__ import annotations

import math

from core.errors import ConfigError

GATED_FILLS = ("cfg", "sd")  # fills made by a generator; real-image fills (oversample, mixup, cutmix) are not gated
DEFAULTS = {"tail_consistency": 0.8, "precision": 0.5, "near_copy_rate": 0.2, "tail_classes": 3}
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
    for k in FIGURES:
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


def measure_gate(tail: list[str], n_tail: int, tail_consistency: float | None, precision: float | None,
                 near_copy_rate: float | None) -> dict:
    """The figures of one fill's gate (see the module docstring), NaN read as not measured."""
    clean = lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)  # noqa: E731
    return {"tail": list(tail), "n_tail": int(n_tail), "tail_consistency": clean(tail_consistency), "precision": clean(precision),
            "near_copy_rate": clean(near_copy_rate)}


def rule_text(t: dict, tail: list[str] | None = None, over: str = "") -> str:
    """e.g. "tail consistency ≥ 0.8 (classes 0, 1, 2), precision ≥ 0.5, tail near-copy rate ≤ 0.2"."""
    classes = f" (classes {', '.join(map(str, tail))})" if tail else ""
    return (f"{over}tail consistency ≥ {t['tail_consistency']:g}{classes}, precision ≥ {t['precision']:g}, "
            f"tail near-copy rate ≤ {t['near_copy_rate']:g}")


def _holds(figure: str, value: float, t: dict) -> bool:
    return value <= t[figure] + EPS if figure == "near_copy_rate" else value >= t[figure] - EPS


def gate_verdict(figures: dict, t: dict | None = None, over: str = "") -> dict:
    """{passed, tail_consistency, precision, near_copy_rate, rule} (and the figures' other keys):
    passed False when a measured figure misses its threshold, None when none misses but one is
    not measured, else True. ``over`` prefixes the rule (e.g. "mean over seeds 0, 1: ")."""
    t = thresholds(t)
    measured = {k: figures.get(k) for k in FIGURES if figures.get(k) is not None}
    missing = [k for k in FIGURES if k not in measured]
    failed = [k for k, v in measured.items() if not _holds(k, v, t)]
    rule = rule_text(t, figures.get("tail"), over)
    passed = False if failed else (None if missing else True)
    if passed is None:
        rule += f"; not measured: {', '.join(k.replace('_', ' ') for k in missing)}"
    return {**figures, "passed": passed, **{k: figures.get(k) for k in FIGURES}, "rule": rule,
            "thresholds": {k: t[k] for k in FIGURES}}


def not_measured(reason: str) -> dict:
    """The gate of a generator fill that could not be measured, e.g. "generation_metrics = false"."""
    return {"passed": None, **{k: None for k in FIGURES}, "rule": f"not measured: {reason}"}


def row_gate(per_seed: dict, t: dict | None = None) -> dict:
    """A row's gate from its fill's per-seed gates ({seed: gate}): each figure's mean over the
    seeds that measured it, the thresholds applied to those means, and ``per_seed``."""
    t = thresholds(t)
    per_seed = {str(s): g for s, g in per_seed.items() if isinstance(g, dict)}
    if not per_seed:
        return {**not_measured("no fill of this row finished"), "per_seed": {}}
    means = {}
    for k in FIGURES:
        vals = [g[k] for g in per_seed.values() if g.get(k) is not None]
        means[k] = sum(vals) / len(vals) if vals else None
    if all(v is None for v in means.values()):  # e.g. generation_metrics = false: every seed says why
        reasons = list(dict.fromkeys(g.get("rule", "not measured") for g in per_seed.values()))
        return {"passed": None, **means, "rule": "; ".join(reasons), "per_seed": per_seed}
    tail = next((g["tail"] for g in per_seed.values() if g.get("tail")), None)
    over = f"mean over seed{'s' if len(per_seed) > 1 else ''} {', '.join(per_seed)}: "
    out = gate_verdict({"tail": tail, **means}, t, over)
    return {**out, "per_seed": per_seed}


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
    """Why a gate did not pass, e.g. "below gate: tail consistency 0.310 < 0.8, precision 0.120 < 0.5";
    its rule when it was not measured; "" when it passed or is not a gate."""
    if not isinstance(gate, dict) or gate.get("passed") is True:
        return ""
    if gate.get("passed") is None:
        return gate.get("rule") or "not measured"
    t = thresholds({k: v for k, v in (gate.get("thresholds") or {}).items() if k in FIGURES})
    words = {"tail_consistency": ("tail consistency", "<"), "precision": ("precision", "<"), "near_copy_rate": ("tail near-copy rate", ">")}
    misses = [f"{words[k][0]} {gate[k]:.3f} {words[k][1]} {t[k]:g}" for k in FIGURES
              if gate.get(k) is not None and not _holds(k, gate[k], t)]
    return "below gate: " + ", ".join(misses)


def regate_words(change: dict) -> str:
    """One entry of a study's ``regated`` history (core.study.run) in words: 'tail_consistency 0.8 → 0.3'."""
    return ", ".join(f"{k} {change['from'][k]:g} → {change['to'][k]:g}" for k in change["to"] if change["from"].get(k) != change["to"][k]) or "no change"
