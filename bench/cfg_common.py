"""Shared helpers of the CFG benchmarks: timing, judge metrics, writing result sections."""

from __future__ import annotations

import datetime as dt
import platform
import re
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "cfg.md"
MACHINE = f"2-core CPU, no GPU ({platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads)"


def judge_metrics(judge, real_feats: np.ndarray | None, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """class-consistency, diversity (mean pairwise judge-feature distance) and FD (judge CNN) vs real test."""
    from core.judge import class_consistency, diversity
    from core.metrics.generation import feature_stats, frechet_distance

    out = {"consistency": class_consistency(judge, images, labels)}
    per_class = [diversity(judge, images[labels == c]) for c in labels.unique().tolist()]
    out["diversity"] = float(np.nanmean(per_class))  # within-class: what guidance trades away
    if real_feats is not None:
        f = judge.features(images).numpy().astype(np.float64)
        out["fd_judge"] = frechet_distance(*feature_stats(f), *feature_stats(real_feats))
    return out


def write_section(title: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the '## title' section of the results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# CFG generator: benchmark results\n"
    block = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda m: block + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.write_text(text)


def stamp(cmd: str) -> str:
    return f"Command: `{cmd}`  \nMachine: {MACHINE}  \nDate: {dt.date.today().isoformat()}\n"


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """Markdown table; cols = (key, header, format)."""
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(("—" if r.get(k) is None else format(r[k], f)) for k, _, f in cols) + " |")
    return "\n".join(lines)
