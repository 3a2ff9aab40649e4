"""Seed statistics worked out by hand."""

import math

import pytest

from core.stats import binomial_ci, binomial_halfwidth, paired, summary, verdict


def test_summary_three_values_by_hand():
    s = summary([0.80, 0.82, 0.84])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.82)
    assert s["std"] == pytest.approx(0.02)  # sqrt(((-.02)^2 + 0 + .02^2) / 2)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t_{0.975, 2} = 4.3027
    assert s["ci95"] == pytest.approx([0.82 - half, 0.82 + half])


def test_summary_single_and_empty():
    assert summary([0.5]) == {"mean": 0.5, "std": None, "ci95": None, "n": 1}
    assert summary([None]) == {"mean": None, "std": None, "ci95": None, "n": 0}


def test_verdicts_on_constructed_numbers():
    assert verdict([0.01, 0.03]) == "better"
    assert verdict([-0.03, -0.01]) == "worse"
    assert verdict([-0.01, 0.02]) == "inconclusive"
    assert verdict(None) == "n/a"
    # a constant +2-point lead on three seeds: std 0, so the CI is [0.02, 0.02] -> better
    r = paired({0: 0.92, 1: 0.93, 2: 0.94}, {0: 0.90, 1: 0.91, 2: 0.92})
    assert r["diff_mean"] == pytest.approx(0.02) and r["verdict"] == "better" and r["n"] == 3
    # leads of +4 and -2 points: mean +1, CI covers 0
    r = paired({0: 0.94, 1: 0.88}, {0: 0.90, 1: 0.90, 2: 0.5})
    assert r["seeds"] == [0, 1] and r["diff_mean"] == pytest.approx(0.01) and r["verdict"] == "inconclusive"
    assert paired({0: 0.9}, {0: 0.8})["verdict"] == "n/a"


def test_binomial_wilson_interval_by_hand():
    # Wilson, k = 324 of n = 360, z = 1.959964: centre (k + z²/2)/(n + z²) = 0.895777,
    # half-width z·√(k(n−k)/n + z²/4)/(n + z²) = 0.031114 (the normal approximation's 0.030990 is centred on 0.9)
    z = 1.959963984540054
    hw = z * math.sqrt(324 * 36 / 360 + z * z / 4) / (360 + z * z)
    centre = (324 + z * z / 2) / (360 + z * z)
    assert hw == pytest.approx(0.0311137, abs=1e-7) and centre == pytest.approx(0.8957768, abs=1e-7)
    assert binomial_ci(0.9, 360) == pytest.approx([centre - hw, centre + hw], abs=1e-12)
    assert binomial_halfwidth(0.9, 360) == pytest.approx(hw, abs=1e-12)
    assert binomial_ci(0.8999, 360) == binomial_ci(0.9, 360)  # a mean over seeds: the nearest count, 324
    assert binomial_halfwidth(0.9, 0) is None and binomial_ci(None, 360) is None
