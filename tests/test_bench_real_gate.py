"""bench/real_gate.py: what it keeps of each seed's gate and how it shows it (the measurement itself is the bench run)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.real_gate import markdown, seed_line  # noqa: E402
from core.study.gate import gate_verdict, measure_gate  # noqa: E402


def _line(seed, tc, prec, real_tc, real_prec):
    g = gate_verdict(measure_gate(["airplane", "automobile", "bird"], 9150, tc, prec, 0.01, real_tail_consistency=real_tc,
                                  real_precision=real_prec, n_real=600))
    return seed_line(seed, g, {"kept": [400], "seconds": 1.0})


def test_a_seed_passes_at_0_9_of_reals_figures_and_fails_below():
    ok = _line(0, 0.64, 0.70, 0.70, 0.75)  # 0.64 ≥ 0.9 × 0.70 = 0.63; 0.70 ≥ 0.675
    low = _line(1, 0.62, 0.70, 0.70, 0.75)  # 0.62 < 0.63
    assert ok["passed"] is True and low["passed"] is False
    assert abs(ok["limits"]["tail_consistency"] - 0.63) < 1e-12 and abs(ok["limits"]["precision"] - 0.675) < 1e-12
    assert ok["passes_absolute"] is False  # the pre-issue-25 absolute 0.8 would have failed it
    assert (ok["n_tail"], ok["n_real"], ok["kept"], ok["tail"]) == (9150, 600, [400], ["airplane", "automobile", "bird"])


def test_markdown_shows_each_figure_beside_reals_and_its_limit():
    md = markdown([_line(0, 0.64, 0.70, 0.70, 0.75), _line(1, 0.62, 0.70, 0.70, 0.75)])
    assert "| 0 | airplane, automobile, bird | 9150 | 0.640 (real 0.700, limit 0.630) | 0.700 (real 0.750, limit 0.675) | 0.010 | 600 | ✓ |" in md
    assert md.rstrip().endswith("| 600 | ✗ |")
