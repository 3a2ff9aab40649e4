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

from core.atomic import read_json
from core.runs import list_runs
from core.viz import method_label

CLS_COLUMNS = ["source", "run_id", "dataset", "profile", "method", "classifier", "seed", "accuracy", "balanced_accuracy",
               "macro_f1", "minority_f1", "minority_classes", "classes", "per_class_f1", "confusion_matrix", "steps", "images_seen",
               "train_size", "loss", "path"]
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
        "run_id": folder.name,
        "dataset": data.get("dataset"),
        "profile": data.get("profile"),
        # a study cell names its method (reweight, cfg@w=0.1+logit-adjust, posthoc-adjust, ...); else the fill's label
        "method": cfg.get("study_method") or res.get("study_method") or method_label(cfg.get("balance_method"), cfg.get("balance_params")),
        "classifier": res.get("arch") or cfg.get("arch"),
        "seed": cfg.get("seed"),
        **{k: res.get(k) for k in ("accuracy", "balanced_accuracy", "macro_f1", "minority_f1", "minority_classes", "classes",
                                   "per_class_f1", "confusion_matrix", "steps", "images_seen", "train_size")},
        "loss": res.get("loss") or cfg.get("loss") or "ce",
        "path": str(folder),
    }


def classifier_results(root: str | os.PathLike | None = None) -> pd.DataFrame:
    rows = []
    for run in list_runs(root):
        if run.kind == "classifier":
            r = _classifier_row(run.path, "standalone")
            if r:
                rows.append(r)
        elif run.kind == "study" and (run.path / "cells").is_dir():
            for cell in sorted((run.path / "cells").iterdir()):
                r = _classifier_row(cell, run.id)
                if r:
                    rows.append(r)
    return pd.DataFrame(rows, columns=CLS_COLUMNS)


def generation_results(root: str | os.PathLike | None = None) -> pd.DataFrame:
    rows = []
    for run in list_runs(root):
        if run.kind != "study":
            continue
        found = []
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
    return pd.DataFrame(rows, columns=GEN_COLUMNS)


def per_class_long(df: pd.DataFrame) -> pd.DataFrame:
    """(method, class, f1) rows from the per-run per_class_f1 lists."""
    rows = []
    for _, r in df.iterrows():
        for c, f1 in enumerate(r["per_class_f1"] or []):
            rows.append({"method": r["method"], "classifier": r["classifier"], "class": c, "f1": f1})
    return pd.DataFrame(rows, columns=["method", "classifier", "class", "f1"])


def flat_config(cfg: dict, prefix: str = "") -> dict:
    """Nested config -> {"data.profile": ..., "lr": ...} for side-by-side comparison."""
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if not isinstance(v, list) else str(v)
    return out


def compare_configs(configs: dict[str, dict]) -> pd.DataFrame:
    """Only the settings that differ between runs (rows = setting, columns = run)."""
    flat = {rid: flat_config({k: v for k, v in c.items() if k != "created"}) for rid, c in configs.items()}
    keys = sorted(set().union(*[set(f) for f in flat.values()])) if flat else []
    diff = [k for k in keys if len({repr(f.get(k)) for f in flat.values()}) > 1]
    return pd.DataFrame({rid: [f.get(k) for k in diff] for rid, f in flat.items()}, index=diff).astype(str)
