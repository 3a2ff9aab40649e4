"""Gather finished runs into tables for the Results page and its CSV (pandas only, no Streamlit).

Classifier results come from every ``results.json`` of a classifier run: standalone runs
in the runs folder and the cells of each study (``<study>/cells/*``). Generation metrics
come from each study's ``generation/*.json`` (FID on Inception-v3, or the substitute
named by its own key and label, e.g. "FD (judge CNN)").
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from core.store.atomic import read_json
from core.study.gate import BELOW_GATE, FIGURES as GATE_FIGURES, gate_reason, gate_symbol
from core.store.provenance import KEY as PROVENANCE
from core.store.runs import list_runs
from core.study.stats import describe_verdict
from core.viz.figures import method_label

CLS_COLUMNS = ["source", "run_id", "dataset", "profile", "method", "classifier", "seed", "steps", "images_seen", "train_size", "loss",
               "test_n", "accuracy", "balanced_accuracy", "macro_f1", "minority_f1", "minority_classes", "classes", "per_class_f1",
               "confusion_matrix", "imbalanced_counts", "settings", "path"]
METRICS = ("accuracy", "macro_f1", "minority_f1")
# Settings that never change a run's results: where and how it was logged, checkpointed or
# previewed. Seeds are left out too: runs that differ only in them are repeats of one setting.
NO_EFFECT = ("device", "eval_every", "checkpoint_every", "preview_every", "preview_steps", "preview_sampler", "log_every",
             "num_workers", "created", "kind", "run_dir", "out")
SEEDS = ("seed", "data.seed", "data.subset_seed")  # subset_seed: a study seed's own imbalanced subset
GEN_COLUMNS = ["source", "method", "seed", "metric", "label", "value", "kid", "kid_label", "n_images"]


def _safe_json(path: Path):
    try:
        return read_json(path)
    except (ValueError, OSError):  # a hand-edited or half-copied file: leave that run out
        return None


def _classifier_row(folder: Path, source: str) -> dict | None:
    res, cfg = _safe_json(folder / "results.json"), _safe_json(folder / "config.json") or {}
    if not res or "accuracy" not in res:
        return None
    data = cfg.get("data") or {}
    return {
        "source": source,
        # a study's cells are named alike in every study (clf__none__small__seed0): the study id keeps them apart (issue 25)
        "run_id": folder.name if source == "standalone" else f"{source}/{folder.name}",
        "dataset": data.get("dataset"),
        "profile": data.get("profile"),
        # a study cell names its method (reweight, cfg@w=0.1+logit-adjust, posthoc-adjust, ...); else the fill's label
        "method": cfg.get("study_method") or res.get("study_method") or method_label(cfg.get("balance_method"), cfg.get("balance_params")),
        "classifier": res.get("arch") or cfg.get("arch"),
        "seed": cfg.get("seed"),
        "steps": res.get("steps"),
        "images_seen": res.get("images_seen"),
        "train_size": res.get("train_size", res.get("train_images")),
        "loss": res.get("loss") or cfg.get("loss") or "ce",
        "test_n": res.get("n"),
        "settings": settings_of(cfg),
        **{k: res.get(k) for k in ("accuracy", "balanced_accuracy", "macro_f1", "minority_f1", "minority_classes", "classes",
                                   "per_class_f1", "confusion_matrix", "imbalanced_counts")},
        "path": str(folder),
    }


def settings_of(cfg: dict) -> dict:
    """A run's flat config minus seeds and the settings that do not change its results."""
    flat = flat_config({k: v for k, v in cfg.items() if k != PROVENANCE})  # who ran it, not what was run
    return {k: v for k, v in flat.items() if k not in SEEDS and k.split(".")[-1] not in NO_EFFECT}


def group_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Runs with identical settings (seeds aside) pooled into one row each: n, steps and, per
    metric, mean, std and the Student-t 95 % CI over the seeds (core.study.stats.summary; n >= 2).

    ``label`` names the group by method and classifier plus every setting that differs
    between groups of that pair, so a 5-epoch and a 30-epoch run are two series, never one bar.
    """
    from core.study.stats import summary

    cols = ["group", "label", "method", "classifier", "n", "seeds", "steps", "images_seen", "runs"]
    cols += [f"{m}_{k}" for m in METRICS for k in ("mean", "std", "lo", "hi")]
    if df is None or df.empty:
        return pd.DataFrame(columns=cols)
    keys = [repr(sorted((r or {}).items())) for r in df["settings"]]
    df = df.assign(_key=keys)
    groups = list(dict.fromkeys(keys))
    settings = {k: dict(df[df["_key"] == k]["settings"].iloc[0] or {}) for k in groups}
    rows = []
    for k in groups:
        g = df[df["_key"] == k]
        method, clf = g["method"].iloc[0], g["classifier"].iloc[0]
        peers = [settings[o] for o in groups if o != k and (df[df["_key"] == o]["method"].iloc[0], df[df["_key"] == o]["classifier"].iloc[0]) == (method, clf)]
        differ = sorted({name for o in peers for name in set(o) | set(settings[k]) if o.get(name) != settings[k].get(name)})
        extra = ", ".join(f"{name}={settings[k].get(name)}" for name in differ if name not in ("balance_method", "arch"))
        steps = sorted({int(x) for x in g["steps"].dropna()})
        seen = sorted({int(x) for x in g["images_seen"].dropna()}) if "images_seen" in g else []
        row = {"group": k, "label": f"{method} · {clf}" + (f" ({extra})" if extra else ""), "method": method, "classifier": clf,
               "n": len(g), "seeds": sorted(int(x) for x in g["seed"].dropna()), "steps": "/".join(map(str, steps)) or "?",
               "images_seen": "/".join(map(str, seen)) or "?",
               "runs": list(g["run_id"])}
        for m in METRICS:
            s = summary([None if pd.isna(v) else float(v) for v in g[m]])
            lo, hi = s["ci95"] or (None, None)
            row.update({f"{m}_mean": s["mean"], f"{m}_std": s["std"], f"{m}_lo": lo, f"{m}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _numeric_key(v: str) -> tuple:
    try:
        return (0, float(v.split("/")[0]), v)
    except ValueError:
        return (1, 0.0, v)


def unequal_compute(df: pd.DataFrame) -> str | None:
    """Why the rows of a comparison are not like for like, or None: they differ in optimizer
    steps, else in images seen (same steps at other batch sizes). A value "9/33" (a group whose
    own runs differ) counts as differing. Unknown values ("?", empty) are left out."""
    if df is None or df.empty:
        return None
    for col, what in (("steps", "training steps"), ("images_seen", "images seen")):
        if col not in df:
            continue
        vals = [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in df[col] if v is not None and not pd.isna(v)]
        distinct = sorted(dict.fromkeys(v for v in vals if v not in ("?", "")), key=_numeric_key)
        if len(distinct) > 1 or any("/" in v for v in distinct):
            return f"these runs differ in {what} ({' vs '.join(distinct)}): not a like-for-like comparison"
    return None


def compute_column(df: pd.DataFrame, by: list[str] | None = None) -> list[str]:
    """One cell per row for a comparison table: its steps (and images seen), flagged "⚠ differs"
    when the rows compared with it (all rows, or those sharing ``by``) differ in compute."""
    if df is None or df.empty:
        return []
    notes = {}
    for key, g in (df.groupby(by, dropna=False, sort=False) if by else [(None, df)]):
        note = unequal_compute(g)
        notes.update({i: note for i in g.index})

    def known(v) -> bool:
        return v is not None and not (isinstance(v, float) and pd.isna(v)) and v != "?"

    out = []
    for i, r in df.iterrows():
        steps, seen = r.get("steps"), r.get("images_seen")
        text = (f"{steps:g}" if isinstance(steps, float) else str(steps)) + " steps" if known(steps) else "steps unknown"
        if known(seen):
            text += f", {seen:g}" if isinstance(seen, float) else f", {seen}"
            text += " images seen"
        out.append(("⚠ differs: " if notes[i] else "same: ") + text)
    return out


def study_rows(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The rows of every study's results.json (one per method × classifier): state, steps,
    n_seeds, metric mean/std/CI and the verdicts against the reference methods."""
    return pd.DataFrame([row for run in list_runs(root) if run.kind == "study" for row in _study_rows_of(run)])


def _study_rows_of(run) -> list[dict]:
    out = []
    res = _safe_json(run.path / "results.json") or {}
    for r in res.get("rows") or []:
        row = {"study": run.id, "method": r.get("method"), "classifier": r.get("classifier"), "state": r.get("state", "ok"),
               "n_seeds": r.get("n_seeds", len(r.get("seeds") or [])), "steps": r.get("steps"), "images_seen": r.get("images_seen"),
               "train_size": r.get("train_size", r.get("train_images")), "budget": r.get("budget"),
               "accuracy_test_hw95": r.get("accuracy_binomial_hw95"), "converged": r.get("converged"),
               "last_doubling_gain": r.get("curve_last_gain"),
               "why": r.get("reason") or "; ".join(f"seed {k}: {str(e).splitlines()[0]}" for k, e in (r.get("errors") or {}).items())}
        for m in METRICS:
            v = r.get(m) or {}
            ci = v.get("ci95") or [None, None]
            row.update({f"{m}_mean": v.get("mean"), f"{m}_std": v.get("std"), f"{m}_lo": ci[0], f"{m}_hi": ci[1]})
        gate = r.get("gate")  # core.study.gate: rows on a generator fill; ✓ / ✗ / "not measured", "" for the others
        row.update({"gate": gate_symbol(gate), **{f"gate_{k}": (gate or {}).get(k) for k in GATE_FIGURES}})
        row.update({"gate_real_tail_consistency": (gate or {}).get("real_tail_consistency"), "gate_real_precision": (gate or {}).get("real_precision")})
        row.update(share_of_gap_columns(r))
        if r.get("state") == BELOW_GATE:
            row["why"] = gate_reason(gate)
        row["vs"] = r.get("vs") or {}
        out.append(row)
    return out


def study_result_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of one study folder's results.json ([] when it has none or it is unreadable)."""
    return (_safe_json(Path(path) / "results.json") or {}).get("rows") or []


def study_curves(rows: list[dict]) -> pd.DataFrame:
    """The budget curves of a study's rows (results.json "rows"), long: one line per point with
    series ("method · classifier"), method, classifier, steps, accuracy, minority_f1, converged."""
    return pd.DataFrame([{"series": f"{r.get('method')} · {r.get('classifier')}", "method": r.get("method"), "classifier": r.get("classifier"),
                          "converged": r.get("converged"), **p} for r in rows for p in (r.get("curve") or []) if isinstance(p, dict)],
                        columns=["series", "method", "classifier", "converged", "steps", "accuracy", "minority_f1", "n_seeds"])


def one_study(path: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The tables of one study folder: {"rows": study_rows, "classifiers": classifier_results,
    "generation": generation_results}, restricted to that study."""
    from core.store.runs import Run

    run = Run(path)
    return {"rows": pd.DataFrame(_study_rows_of(run)),
            "classifiers": pd.DataFrame(_study_classifier_rows(run), columns=CLS_COLUMNS),
            "generation": pd.DataFrame(_generation_rows(run), columns=GEN_COLUMNS)}


def share_of_gap_columns(r: dict) -> dict:
    """The share of the imbalance gap a row closes (core.study.gap), as text per endpoint ("0.45 [0.20, 0.71]",
    "n/a (real − none not detected)"); `real` says how many real images it could use, `none` "—"."""
    g = r.get("share_of_gap") or {}
    own = {"none": "— (0 by definition)", "real": "— (1 by definition)"}.get(r.get("method"))
    if r.get("real_images"):
        own = f"— (1 by definition; {r['real_images']['text']})"
    return {"share_of_gap_accuracy": own or (g.get("accuracy") or {}).get("text", "—"),
            "share_of_gap_minority_f1": own or (g.get("minority_f1") or {}).get("text", "—")}


def endpoint_entries(vs: dict) -> list[tuple[str, dict]]:
    """(reference, entry) for every endpoint of a row's ``vs``: the accuracy entry, then its
    ``minority_f1`` entry (issue 25: the minority is a primary endpoint) where it has one."""
    out = []
    for ref, v in (vs or {}).items():
        out.append((ref, v))
        if isinstance(v.get("minority_f1"), dict):
            out.append((ref, v["minority_f1"]))
    return out


def verdict_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (study, method, classifier, reference, endpoint): the paired difference, its CI and verdict."""
    out = []
    for _, r in (rows if rows is not None else pd.DataFrame()).iterrows():
        for ref, v in endpoint_entries(r.get("vs")):
            ci = v.get("ci95")
            out.append({"study": r["study"], "method": r["method"], "classifier": r["classifier"], "vs": ref, "metric": v.get("metric"),
                        "difference": v.get("diff_mean"), "95% CI": f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "n/a (one seed)",
                        "p": v.get("p"), "p (Holm)": v.get("p_holm"), "MDE (pts)": None if v.get("mde") is None else 100 * v["mde"],
                        "verdict": describe_verdict(v)})
    return pd.DataFrame(out, columns=["study", "method", "classifier", "vs", "metric", "difference", "95% CI", "p", "p (Holm)", "MDE (pts)",
                                      "verdict"])


def classifier_results(root: str | os.PathLike | None = None) -> pd.DataFrame:
    rows = []
    for run in list_runs(root):
        if run.kind == "classifier":
            r = _classifier_row(run.path, "standalone")
            if r:
                rows.append(r)
        elif run.kind == "study":
            rows += _study_classifier_rows(run)
    return pd.DataFrame(rows, columns=CLS_COLUMNS)


def _study_classifier_rows(run) -> list[dict]:
    if not (run.path / "cells").is_dir():
        return []
    return [r for cell in sorted((run.path / "cells").iterdir()) if (r := _classifier_row(cell, run.id))]


def generation_results(root: str | os.PathLike | None = None) -> pd.DataFrame:
    return pd.DataFrame([row for run in list_runs(root) if run.kind == "study" for row in _generation_rows(run)], columns=GEN_COLUMNS)


def _generation_rows(run) -> list[dict]:
    rows, found = [], []
    for f in sorted((run.path / "generation").glob("*.json")):  # studies before the cells layout
        found.append(_safe_json(f))
    for f in sorted((run.path / "cells").glob("fill__*/results.json")):  # a fill cell: {"name", "seed", "generation": {...}}
        r = _safe_json(f)
        if r and isinstance(r.get("generation"), dict):
            found.append({**r["generation"], "variant": r.get("name"), "seed": r.get("seed")})
    for g in found:
        if not g or "key" not in g or g.get(g["key"]) is None:
            continue
        rows.append({"source": run.id, "method": g.get("variant"), "seed": g.get("seed"), "metric": g["key"], "label": g.get("label", g["key"]),
                     "value": g[g["key"]], "kid": g.get("kid"), "kid_label": g.get("kid_label", "KID"), "n_images": g.get("n_images")})
    return rows


def per_class_long(df: pd.DataFrame) -> pd.DataFrame:
    """(method, class, f1) rows from the per-run per_class_f1 lists."""
    rows = []
    for _, r in df.iterrows():
        for c, f1 in enumerate(r["per_class_f1"] or []):
            rows.append({"method": r["method"], "classifier": r["classifier"], "class": c, "f1": f1})
    return pd.DataFrame(rows, columns=["method", "classifier", "class", "f1"])


def flat_config(cfg: dict) -> dict:
    """Nested config -> {"data.profile": ..., "lr": ...} for side-by-side comparison (``pd.json_normalize``;
    lists become their text, so they compare and hash like the other values)."""
    if not cfg:
        return {}
    flat = pd.json_normalize(cfg, sep=".").to_dict(orient="records")[0]
    return {k: str(v) if isinstance(v, list) else v for k, v in flat.items()}


def compare_configs(configs: dict[str, dict]) -> pd.DataFrame:
    """Only the settings that differ between runs (rows = setting, columns = run)."""
    flat = {rid: flat_config({k: v for k, v in c.items() if k not in ("created", PROVENANCE)}) for rid, c in configs.items()}
    keys = sorted(set().union(*[set(f) for f in flat.values()])) if flat else []
    diff = [k for k in keys if len({repr(f.get(k)) for f in flat.values()}) > 1]
    return pd.DataFrame({rid: [f.get(k) for k in diff] for rid, f in flat.items()}, index=diff).astype(str)
