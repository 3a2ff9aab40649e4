"""Shared helpers of the CFG benchmarks: judge metrics and markdown tables (results go through bench/record.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def judge_metrics(judge, real_feats: np.ndarray | None, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """class-consistency, diversity (mean pairwise judge-feature distance) and FD (judge CNN) vs real test."""
    from core.metrics.judge import class_consistency, diversity
    from core.metrics.generation import feature_stats, frechet_distance

    out = {"consistency": class_consistency(judge, images, labels)}
    per_class = [diversity(judge, images[labels == c]) for c in labels.unique().tolist()]
    out["diversity"] = float(np.nanmean(per_class))  # within-class: what guidance trades away
    if real_feats is not None:
        f = judge.features(images).numpy().astype(np.float64)
        out["fd_judge"] = frechet_distance(*feature_stats(f), *feature_stats(real_feats))
    return out


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """Markdown table; cols = (key, header, format)."""
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(("—" if r.get(k) is None else format(r[k], f)) for k, _, f in cols) + " |")
    return "\n".join(lines)
