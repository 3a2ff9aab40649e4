"""A study's rows: its cells' outcomes summarised per method × classifier (results.json / results.csv).

One row (the JSON contract of ``experiment --json``)::

    method       "cfg@w=0.1+logit-adjust"; fill "cfg", loss "logit-adjust", w 0.1, partial true; classifier "small"
    state        ok | below_gate | failed | unavailable (| cancelled when the study was stopped); below_gate: trained on a
                 generator fill that failed its gate, a row state, not a failure (the study still ends "done")
    errors       {seed: error text} of the seeds that failed; reason: why it is unavailable (or None)
    steps, images_seen, train_size, batch_size   integers (the same for every seed); budget "steps" | "epochs"
    n_seeds, seeds                              the seeds that succeeded
    accuracy, balanced_accuracy, macro_f1, minority_f1   {mean, std, ci95: [lo, hi] | None}
    accuracy_binomial_ci95, accuracy_binomial_hw95   Wilson 95 % interval of the accuracy on the test set's n
                                                images, and half its width (not in ci95; core.study.stats.binomial_ci)
    vs           {reference: {metric: "accuracy", diff_mean, ci95, p, p_holm, mde, test_noise, verdict,
                 minority_f1: {the same keys for minority F1}, mirrored}} per compare_to entry ≠ the row: a paired
                 seed-level t test with the shared test-set term (core.study.stats.paired_test), both endpoints in Holm across
                 the study, each unordered pair once (the second orientation is ``mirrored``);
                 with a below_gate row the verdict is "below gate", with an unmeasured gate "ungated" (diff, CI, p kept,
                 p_holm and mde None: outside the Holm family)
    gate         rows on a CFG / SD fill (partial fills too): {passed, tail_consistency, precision, near_copy_rate, rule,
                 tail, per_seed, real_tail_consistency, real_precision} (core.study.gate.row_gate: every seed must pass, held to
                 that seed's real figures; a partial fill's gate is measured on the images it uses)
    real_images  the `real` row: {used, wanted, text}: how many dropped real images it could use
    share_of_gap {accuracy, minority_f1: {share, ci95, detected, text}}: (m − none) / (real − none), core.study.gap; n/a
                 unless real − none is detected
    per_class_f1, minority_classes, train_images, kid, fd_judge | fid, per_class_<key>   as before

A metric's ci95 is Student t over seeds, clipped to [0, 1]: it covers training randomness and
the choice of subset (each seed draws its own unless fixed_subset), not the finite test set.
The verdicts carry both (core.study.stats.paired_test), from each cell's saved test logits, for accuracy and minority F1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.study.graph import CANCELLED, FAILED, OK, UNAVAILABLE
from core.study.gate import BELOW_GATE, GATED_FILLS, gate_mark, gate_symbol, row_gate
from core.study.stats import ENDPOINTS, VERDICT_RULE, binomial_ci, binomial_halfwidth, holm, holm_verdict, mde, paired_t, paired_test, summary

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "minority_f1")
REAL_ROW = "real"  # the row on the dropped real images (core.study.config.REAL_FILL): the bound
CI_NOTE = ("ci95 is a Student-t 95% interval over seeds, clipped to [0, 1]: it covers training randomness and the choice of "
           "imbalanced subset, not the finite test set (see accuracy_binomial_hw95). The verdicts carry both: " + VERDICT_RULE + ". "
           "'inconclusive' means no difference was detected (mde: the smallest it could have detected), not that the methods are equal.")
GATE_NOTE = ("gate: a generator fill (CFG, SD) passes when the judge CNN assigns its tail images (the 3 most-filled classes) to "
             "their class, its precision is high enough and few tail images are near-copies (thresholds: the study's [gate]); a row "
             "trained on a fill below the gate is below_gate: its figures are shown, its verdicts read 'below gate' and are left out "
             "of the Holm family ('ungated' when the gate could not be measured).")
EPOCHS_NOTE = ("budget = epochs (the paper's protocol): every method trains the same number of epochs, so smaller training sets "
               "get fewer optimizer steps; compare the steps and images_seen columns before reading a gap as the method's.")


def _msc(values: list) -> dict:
    s = summary(values, bounds=(0.0, 1.0))  # every metric of a row is a rate in [0, 1]
    return {"mean": s["mean"], "std": s["std"], "ci95": s["ci95"]}


def _seed_outcomes(cfg, plan, v, clf, outcomes) -> dict:
    return {s: outcomes.get(plan.clf_id(v.name, clf, s)) for s in cfg.seeds}


def _row_state(per_seed: dict) -> tuple[str, dict, str | None]:
    """(state, errors per seed, reason): failed when any seed failed, unavailable when no seed
    could run here, cancelled when the study was stopped before any seed finished, else ok."""
    errors = {str(s): o.error for s, o in per_seed.items() if o is not None and o.state == FAILED}
    reasons = [o.error for o in per_seed.values() if o is not None and o.state == UNAVAILABLE]
    ok = [s for s, o in per_seed.items() if o is not None and o.state == OK]
    if errors:
        return FAILED, errors, None
    if reasons and not ok:
        return UNAVAILABLE, {}, reasons[0]
    if not ok and any(o is None or o.state == CANCELLED for o in per_seed.values()):
        return CANCELLED, {}, "cancelled"
    return OK, {}, reasons[0] if reasons else None


def _generation(cfg, plan, v, outcomes) -> dict:
    """The generation metric of the set this row trained on: its fill's (full fills; the losses
    and posthoc-adjust train on the imbalanced set, i.e. `none`'s); partial fills are not measured."""
    if v.partial:
        return {}
    gs = [{**o.result["generation"], "seed": s} for s in cfg.seeds
          if (o := outcomes.get(plan.fill_id(v.fill_name, s))) is not None and o.state == OK and o.result.get("generation")]
    if not gs:
        return {}
    key = gs[0]["key"]
    ms = lambda xs: {k: x for k, x in summary(xs).items() if k in ("mean", "std")}  # noqa: E731
    out = {key: {**ms([g[key] for g in gs]), "n_images": gs[0]["n_images"], "n_reference": gs[0]["n_reference"],
                 "label": gs[0]["label"], "seeds": [g["seed"] for g in gs]},
           "kid": {**ms([g["kid"] for g in gs]), "n_images": gs[0]["kid_subset_size"], "label": gs[0]["kid_label"], "extractor": gs[0]["extractor"]}}
    fills = [o.result for s in cfg.seeds
             if (o := outcomes.get(plan.fill_id(v.fill_name, s))) is not None and o.state == OK and o.result.get("novelty")]
    if fills:  # the generated images only, against held-out real images (core.metrics.novelty)
        nov = [f["novelty"] for f in fills]
        for k in ("near_copy_rate", "cross_class_rate", "mirrored_rate", "feature_near_copy_rate", "precision", "recall"):
            out[k] = {**_msc([n.get(k) for n in nov]), "n_images": fills[0]["n_generated"]}
        out["near_copy_rate"]["rule"] = nov[0].get("rule")
        out["novelty_extractor"] = nov[0].get("extractor")
        out["per_class_near_copy_rate"] = {c: summary([n["per_class"].get(c, {}).get("near_copy_rate") for n in nov])["mean"]
                                           for c in nov[0]["per_class"]}
    per = [[p["value"] for p in g["per_class"]] for g in gs]
    out[f"per_class_{key}"] = [{"class": p["class"], "n_images": p["n_images"], **ms([pc[i] for pc in per])}
                               for i, p in enumerate(gs[0]["per_class"])]
    return out


def _per_class_f1(rs: list[dict]) -> dict | None:
    if not rs:
        return None
    pcf = np.array([r["per_class_f1"] for r in rs], dtype=float)
    return {"classes": rs[0].get("classes"), "mean": pcf.mean(0).tolist(),
            "std": pcf.std(0, ddof=1).tolist() if len(rs) > 1 else None}


def _budget_fields(cfg, plan, v, clf, rs: list[dict]) -> dict:
    """steps / images_seen / train_size: what the runs did, or (no run finished) what was planned."""
    if rs:
        return {k: int(rs[0][k]) for k in ("steps", "images_seen", "train_size", "batch_size")}
    return dict(plan.planned[f"{v.name}|{clf}"])


def make_row(cfg, plan, v, clf, outcomes, test_size: int) -> dict:
    per_seed = _seed_outcomes(cfg, plan, v, clf, outcomes)
    state, errors, reason = _row_state(per_seed)
    seeds = [s for s, o in per_seed.items() if o is not None and o.state == OK]
    rs = [per_seed[s].result for s in seeds]
    row = {"method": v.name, "fill": v.fill, "loss": v.loss, "w": v.w, "partial": v.partial, "classifier": clf,
           "state": state, "errors": errors, "reason": reason, "budget": cfg.budget,
           **_budget_fields(cfg, plan, v, clf, rs), "n_seeds": len(seeds), "seeds": seeds}
    for k in METRICS:
        row[k] = _msc([r.get(k) for r in rs])
    acc = row["accuracy"]["mean"]
    row["accuracy_binomial_ci95"] = binomial_ci(acc, test_size)
    row["accuracy_binomial_hw95"] = binomial_halfwidth(acc, test_size)
    row["test_size"] = test_size
    row["per_class_f1"] = _per_class_f1(rs)
    row["minority_classes"] = rs[0].get("minority_classes") if rs else None
    row["train_images"] = rs[0].get("train_images") if rs else None
    row["kid"] = None
    row.update(_generation(cfg, plan, v, outcomes))
    if v.fill in GATED_FILLS:  # core.study.gate: every seed of the fill must pass; a partial fill is gated on the images it uses
        key = "gate_partial" if v.partial else "gate"
        row["gate"] = row_gate({s: o.result.get(key, o.result.get("gate")) for s in cfg.seeds
                                if (o := outcomes.get(plan.fill_id(v.fill_name, s))) is not None and o.state == OK}, cfg.gate)
        row["gate"]["images"] = "the images this partial fill uses" if v.partial else "the whole fill"
        if state == OK and row["gate"]["passed"] is False:
            row["state"] = BELOW_GATE
    if v.fill == "real":  # the bound: how many of the real images it wanted the pool could give (core.data.pool)
        fills = [o.result for s in cfg.seeds if (o := outcomes.get(plan.fill_id(v.fill_name, s))) is not None and o.state == OK
                 and o.result.get("real_used") is not None]
        if fills:
            used = [sum(f["real_used"]) for f in fills]
            wanted = sum(fills[0]["real_wanted"])
            row["real_images"] = {"used": min(used), "wanted": wanted, "per_seed_used": used,
                                  "text": (f"all {wanted} real images it needed" if min(used) >= wanted else
                                           f"{min(used)} of the {wanted} real images it needed (the pool is too small)")}
    row.update(_curve_fields(cfg, seeds, rs))
    row["_acc"] = {s: r["accuracy"] for s, r in zip(seeds, rs)}  # per-seed accuracy for the paired comparisons (dropped below)
    row["_per_seed"] = {k: {s: r.get(k) for s, r in zip(seeds, rs) if r.get(k) is not None} for k in ENDPOINTS}
    row["_correct"] = _correctness(seeds, rs)  # per-seed per-image (predictions, labels), or None (dropped below)
    return row


def _curve_fields(cfg, seeds: list[int], rs: list[dict]) -> dict:
    """curve (mean over seeds per steps value, the full run's point last), converged and its rule
    (core.study.curves), and the per-seed accuracies along the curve for the verdicts (dropped below).
    The points are validation figures where the runs measured the validation split (issue 25); the
    full run's point is then its validation figure too, never its test figure."""
    from core.study.curves import CONVERGED_GAIN, CONVERGED_GAIN_MINORITY, convergence, mean_curve

    def last(r: dict) -> dict:
        v = r.get("validation") or {}
        src = v if v.get("accuracy") is not None else r
        return {"steps": r["steps"], "accuracy": src["accuracy"], "minority_f1": src.get("minority_f1")}

    per_seed = {s: [*(r.get("curve") or []), last(r)] for s, r in zip(seeds, rs)}
    curve = mean_curve(per_seed) if per_seed else []
    conv = (convergence(curve, float(getattr(cfg, "converged_gain", CONVERGED_GAIN)),
                        float(getattr(cfg, "converged_gain_minority", CONVERGED_GAIN_MINORITY)))
            if curve else {"converged": False, "last_gain": None, "last_gain_minority": None, "rule": None})
    by_steps: dict[int, dict[int, float]] = {}
    for s, points in per_seed.items():
        for p in points:
            by_steps.setdefault(int(p["steps"]), {})[s] = float(p["accuracy"])
    return {"curve": curve, "curve_split": "validation" if rs and all((r.get("validation") or {}).get("accuracy") is not None for r in rs) else "test",
            "converged": conv["converged"], "curve_last_gain": conv["last_gain"],
            "curve_last_gain_minority": conv.get("last_gain_minority"), "converged_rule": conv["rule"], "_curve_acc": by_steps}


def _correctness(seeds: list[int], rs: list[dict]) -> dict | None:
    """{seed: (predictions, labels)} from each run's test_logits.safetensors, or None when any is
    missing (a study from before they were saved: the verdicts fall back to a paired t over seeds
    and say so)."""
    from safetensors.torch import load_file

    out = {}
    for s, r in zip(seeds, rs):
        path = Path(r.get("run_dir") or "") / "test_logits.safetensors"
        if not r.get("run_dir") or not path.is_file():
            return None
        try:
            t = load_file(str(path))
        except Exception:  # unreadable: treat like missing, the fallback says so
            return None
        out[s] = (t["logits"].argmax(-1).numpy(), t["labels"].numpy())
    return out


def _compare(r: dict, other: dict, metric: str = "accuracy") -> dict:
    """One paired comparison of one endpoint (before Holm): core.study.stats.paired_test from per-image
    predictions, or the paired t over seeds where a row lacks them."""
    a, b = r.get("_correct"), other.get("_correct")
    mine, theirs = ((x.get("_per_seed") or {"accuracy": x["_acc"]}).get(metric) or {} for x in (r, other))
    common = sorted(set(mine) & set(theirs))
    minority = r.get("minority_classes") or other.get("minority_classes")
    if metric == "minority_f1" and not minority:
        return {"metric": metric, "diff_mean": None, "ci95": None, "p": None, "se": None, "df": None, "n": 0, "test_noise": False}
    if a is not None and b is not None and common and all(len(a[s][1]) == len(b[s][1]) for s in common):
        labels_equal = all(np.array_equal(a[s][1], a[common[0]][1]) for s in common)
        p = paired_test({s: a[s] for s in common}, {s: b[s] for s in common}, metric=metric, minority=minority, labels_equal=labels_equal)
        return {"metric": metric, "diff_mean": p["diff_mean"], "ci95": p["ci95"], "p": p["p"], "se": p["se"], "df": p["df"], "n": p["n"],
                "test_noise": True}
    p = paired_t(mine, theirs)
    return {"metric": metric, "diff_mean": p["diff_mean"], "ci95": p["ci95"], "p": p["p"], "se": p["se"], "df": max(p["n"] - 1, 1),
            "n": p["n"], "test_noise": False}


def _label_training(entry: dict, r: dict, other: dict) -> None:
    """The comparison along both budget curves (along_curve, sign_changes) and, where either row
    has not converged (core.study.curves), the label "under-trained" instead of a verdict."""
    from core.study.curves import along_curve, sign_changes

    entry["along_curve"] = along_curve(r.get("_curve_acc") or {}, other.get("_curve_acc") or {})
    entry["sign_changes"] = sign_changes(entry["along_curve"])
    if entry.get("diff_mean") is not None and not (r.get("converged") and other.get("converged")):
        entry["verdict"] = "under-trained"
        entry["not_converged"] = [x["method"] for x in (r, other) if not x.get("converged")]


_FLIP = {"better": "worse", "worse": "better"}


def _mirror(entry: dict) -> dict:
    """The entry of the same unordered pair seen from the other row: differences negated, the same p."""
    out = {**entry, "diff_mean": -entry["diff_mean"] if entry.get("diff_mean") is not None else None,
           "ci95": [-entry["ci95"][1], -entry["ci95"][0]] if entry.get("ci95") else None,
           "verdict": _FLIP.get(entry.get("verdict"), entry.get("verdict")), "mirrored": True}
    if entry.get("along_curve") is not None:
        out["along_curve"] = [{**p, "diff": -p["diff"]} for p in entry["along_curve"]]
    if isinstance(entry.get("minority_f1"), dict):
        out["minority_f1"] = _mirror(entry["minority_f1"])
        out["minority_f1"].pop("mirrored", None)
    return out


def add_comparisons(rows: list[dict], compare_to: list[str]) -> list[str]:
    """vs[ref]: the paired differences against each reference on the seeds both rows have (same
    classifier), for accuracy (the entry's own keys) and for minority F1 (``vs[ref]["minority_f1"]``,
    the same keys): diff_mean, a 95 % interval, the two-sided p, p_holm (Holm across every
    comparison of the study, both endpoints), mde (the smallest difference it could have detected
    at 80 % power) and the verdict, which follows p_holm. Each unordered pair is tested once: where
    both rows name the other in compare_to (none vs oversample), the second entry mirrors the first
    (``mirrored``) and the pair counts once in Holm. Where a row is below its generator gate the
    verdict is "below gate", with an unmeasured gate "ungated" (core.study.gate.gate_mark); else, where
    either row has not converged (core.study.curves), "under-trained". Such a comparison keeps diff_mean,
    ci95 and p but is not in the Holm family (p_holm and mde None). Every entry carries the
    accuracy difference along both budget curves and whether its sign changes there where detected."""
    missing = set()
    by = {(r["method"], r["classifier"]): r for r in rows}
    entries, pairs, mirrors = [], {}, []
    for r in rows:
        r["vs"] = {}
        for ref in compare_to:
            if ref == r["method"]:
                continue
            other = by.get((ref, r["classifier"]))
            if other is None:
                missing.add(ref)
                continue
            key = (r["classifier"], frozenset((r["method"], ref)))
            if key in pairs:
                mirrors.append((r, ref, pairs[key]))
                continue
            e = _compare(r, other)
            e["minority_f1"] = _compare(r, other, "minority_f1")
            pairs[key] = e
            r["vs"][ref] = e
            _label_training(e, r, other)
            mark = gate_mark(r.get("gate"), other.get("gate")) if e["diff_mean"] is not None else None
            if mark:  # a gated-out comparison keeps its figures but no verdict, outside the Holm family (no figures: n/a)
                e.update(verdict=mark)
            for x in (e, e["minority_f1"]):
                if e.get("verdict") is not None and x is not e:
                    x["verdict"] = e["verdict"]  # the label (under-trained, below gate) holds for both endpoints
                if x.get("verdict") is None:  # labelled comparisons are not verdicts: outside the Holm family
                    entries.append(x)
    adjusted = holm([e["p"] for e in entries])
    m = sum(p is not None for p in adjusted)
    for e, ph in zip(entries, adjusted):
        e["p_holm"] = ph
        e["mde"] = mde(e.get("se"), m, df=e.get("df")) if ph is not None else None
        e["verdict"] = holm_verdict(e["diff_mean"], ph)
    for r in rows:
        for e in r["vs"].values():
            for x in (e, e.get("minority_f1") or {}):
                x.setdefault("p_holm", None)
                x.setdefault("mde", None)
                x.pop("se", None)
                x.pop("df", None)
    for r, ref, source in mirrors:
        r["vs"][ref] = _mirror(source)
    _add_share_of_gap(rows, by)
    for r in rows:
        r.pop("_acc")
        r.pop("_per_seed", None)
        r.pop("_curve_acc", None)
        r.pop("_correct", None)
    if not any(r["method"] == REAL_ROW for r in rows):  # no pool (or real_fill off), no `real` row: nothing to say
        missing.discard(REAL_ROW)
    return [f"compare_to names '{m}', which is not a row of this study: no comparison against it." for m in sorted(missing)]


def _add_share_of_gap(rows: list[dict], by: dict) -> None:
    """share_of_gap[endpoint] of every row but none and real (core.study.gap): (m − none) / (real − none)
    with a bootstrap interval, n/a unless real − none was detected for that endpoint."""
    from core.study.gap import share_of_gap

    for r in rows:
        none, real = by.get(("none", r["classifier"])), by.get((REAL_ROW, r["classifier"]))
        if r["method"] in ("none", REAL_ROW) or none is None or real is None:
            continue
        gap = (real.get("vs") or {}).get("none") or (none.get("vs") or {}).get(REAL_ROW) or {}
        r["share_of_gap"] = {}
        for metric in ENDPOINTS:
            e = gap if metric == "accuracy" else gap.get("minority_f1") or {}
            detected = e.get("verdict") in ("better", "worse")
            parts = [x.get("_correct") for x in (r, none, real)]
            if detected and any(p is None for p in parts):
                r["share_of_gap"][metric] = {"share": None, "ci95": None, "detected": True, "text": "n/a (no per-image results)"}
                continue
            minority = r.get("minority_classes") if metric == "minority_f1" else None
            if metric == "minority_f1" and not minority:
                r["share_of_gap"][metric] = {"share": None, "ci95": None, "detected": detected, "text": "n/a (no minority classes)"}
                continue
            r["share_of_gap"][metric] = share_of_gap(*parts, metric=metric, minority=minority, detected=detected)


def aggregate(cfg, plan, outcomes: dict, test_size: int, regated: list | None = None) -> tuple[list[dict], list[str]]:
    """(rows, notes) of a study from its cells' outcomes. ``regated``: config.json's history of gate
    changes made after results were seen (core.study.run); every verdict that involves a gated row is
    then marked ``gate_changed`` (core.study.stats.describe_verdict says so in every view)."""
    rows = [make_row(cfg, plan, v, clf, outcomes, test_size) for v in cfg.variants() for clf in cfg.classifiers]
    notes = add_comparisons(rows, cfg.compare_to)
    if regated:
        mark_regated(rows, regated)
    gen_notes = {o.result["generation"].get("note") for o in outcomes.values()
                 if o.state == OK and o.result and o.result.get("generation") and o.result["generation"].get("note")}
    notes = sorted(gen_notes) + notes + [CI_NOTE] + ([GATE_NOTE] if any("gate" in r for r in rows) else [])
    if cfg.budget == "epochs":
        notes.append(EPOCHS_NOTE)
    return rows, notes


def mark_regated(rows: list[dict], regated: list) -> None:
    """Mark every comparison with a gated row (either side), both endpoints, when the study's gate was
    changed after its results were seen: such a verdict may have been chosen, not measured."""
    from core.study.gate import regate_words

    words = "; ".join(f"{c.get('at', '?')[:16]}: {regate_words(c)}" for c in regated if isinstance(c, dict))
    gated = {(r["method"], r["classifier"]) for r in rows if isinstance(r.get("gate"), dict)}
    for r in rows:
        for ref, e in (r.get("vs") or {}).items():
            if (r["method"], r["classifier"]) in gated or (ref, r["classifier"]) in gated:
                for x in (e, e.get("minority_f1") or {}):
                    x["gate_changed"] = words


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """One flat row per method × classifier (what results.csv holds)."""
    flat = []
    for r in rows:
        f = {k: r[k] for k in ("method", "fill", "loss", "w", "classifier", "state", "budget", "steps", "images_seen", "train_size", "n_seeds")}
        f["seeds"] = ";".join(map(str, r["seeds"]))
        for k in METRICS:
            m = r[k]
            f[f"{k}_mean"], f[f"{k}_std"] = m["mean"], m["std"]
            f[f"{k}_ci95_lo"], f[f"{k}_ci95_hi"] = (m["ci95"] or [None, None])
        f["accuracy_binomial_hw95"] = r["accuracy_binomial_hw95"]
        f["accuracy_binomial_ci95_lo"], f["accuracy_binomial_ci95_hi"] = r.get("accuracy_binomial_ci95") or [None, None]
        for ref, c in r["vs"].items():
            f[f"vs_{ref}_diff"], f[f"vs_{ref}_verdict"] = c["diff_mean"], c["verdict"]
            f[f"vs_{ref}_p_holm"], f[f"vs_{ref}_mde"] = c.get("p_holm"), c.get("mde")
            mf = c.get("minority_f1") or {}
            f[f"vs_{ref}_minority_f1_diff"], f[f"vs_{ref}_minority_f1_verdict"] = mf.get("diff_mean"), mf.get("verdict")
            f[f"vs_{ref}_minority_f1_p_holm"], f[f"vs_{ref}_minority_f1_mde"] = mf.get("p_holm"), mf.get("mde")
        for key in ("fid", "fd_judge"):
            if r.get(key):
                f[f"{key}_mean"], f[f"{key}_std"], f[f"{key}_n_images"] = r[key]["mean"], r[key]["std"], r[key]["n_images"]
        for key in ("near_copy_rate", "precision", "recall"):
            if r.get(key):
                f[f"{key}_mean"], f[f"{key}_std"] = r[key]["mean"], r[key]["std"]
        for metric, g in (r.get("share_of_gap") or {}).items():
            f[f"share_of_gap_{metric}"] = g.get("share")
            f[f"share_of_gap_{metric}_text"] = g.get("text")
        if r.get("gate"):
            f["gate"] = gate_symbol(r["gate"])
            for key in ("tail_consistency", "precision", "near_copy_rate"):
                f[f"gate_{key}"] = r["gate"][key]
        if r.get("kid"):
            f["kid_extractor"], f["kid_mean"], f["kid_std"], f["kid_n_images"] = r["kid"]["extractor"], r["kid"]["mean"], r["kid"]["std"], r["kid"]["n_images"]
        if r.get("per_class_f1"):
            for name, m in zip(r["per_class_f1"]["classes"] or range(len(r["per_class_f1"]["mean"])), r["per_class_f1"]["mean"]):
                f[f"f1_{name}"] = m
        f["errors"] = " | ".join(f"seed {s}: {e.splitlines()[0]}" for s, e in r["errors"].items())
        f["reason"] = r["reason"] or ""
        flat.append(f)
    return pd.DataFrame(flat)
