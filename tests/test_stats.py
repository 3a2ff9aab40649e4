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


# ------------------------------------------------------------------ verdicts with power (issue 17 item 3)
import numpy as np  # noqa: E402

from core.stats import describe_verdict, holm, holm_verdict, mde, paired_bootstrap, paired_t  # noqa: E402


def test_holm_on_known_pvalues():
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4·0.005 = 0.02, 3·0.01 = 0.03, 2·0.03 = 0.06, max(0.06, 1·0.04) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # None does not count towards m: m = 2 -> 2·0.02 = 0.04, max(0.04, 0.5) = 0.5; and a cap at 1
    assert holm([None, 0.5, 0.02]) == [None, pytest.approx(0.5), pytest.approx(0.04)]
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_holm_verdict_follows_the_adjusted_p():
    assert holm_verdict(0.02, 0.049) == "better"
    assert holm_verdict(-0.02, 0.01) == "worse"
    assert holm_verdict(0.02, 0.051) == "inconclusive"
    assert holm_verdict(None, None) == "n/a"


def test_mde_by_hand():
    # (z_0.975 + z_0.80)·SE = (1.959964 + 0.841621)·0.01
    assert mde(0.01) == pytest.approx(0.0280159, abs=1e-6)
    # four comparisons: Bonferroni level 0.05/4, z_{1-0.00625} = 2.497705
    assert mde(0.01, m=4) == pytest.approx((2.497705 + 0.841621) * 0.01, abs=1e-6)
    assert mde(None) is None


def test_describe_verdict_states_what_it_could_have_detected():
    assert describe_verdict({"verdict": "inconclusive", "mde": 0.041, "p_holm": 0.3}) == "inconclusive (could not detect < 4.1 pts)"
    assert describe_verdict({"verdict": "better", "mde": 0.02, "p_holm": 0.0012}) == "better (p_holm = 0.0012)"
    assert describe_verdict({"verdict": "n/a"}) == "n/a" and describe_verdict(None) == "–"


def test_bootstrap_identical_methods_give_p_one():
    rng = np.random.default_rng(0)
    c = {s: rng.random(300) < 0.8 for s in range(3)}
    r = paired_bootstrap(c, c, n_boot=500)
    assert r["diff_mean"] == 0 and r["p"] == 1.0 and r["ci95"] == [0.0, 0.0] and r["se"] == 0.0


def test_bootstrap_a_clear_lead_gets_the_smallest_p():
    # method right on all 200 images; reference wrong on every 10th: +0.1 on every seed
    ref = {s: np.arange(200) % 10 != 0 for s in range(3)}
    met = {s: np.ones(200, bool) for s in range(3)}
    r = paired_bootstrap(met, ref, n_boot=999)
    assert r["diff_mean"] == pytest.approx(0.1)
    assert r["p"] == pytest.approx(2 / 1000)  # no replicate reaches 0: p = 2·(0+1)/(B+1)
    assert r["n"] == 3 and r["seeds"] == [0, 1, 2]


def test_bootstrap_carries_test_set_noise():
    # one seed: the spread is the test set's alone. 40 of 400 images differ (+1): SE = sqrt(0.1·0.9/400) = 0.015
    met = {0: np.ones(400, bool)}
    ref = {0: np.arange(400) % 10 != 0}
    r = paired_bootstrap(met, ref, n_boot=4000)
    assert r["se"] == pytest.approx(0.015, rel=0.08)
    # the seed-only paired t sees no spread at all in a constant lead; the bootstrap does
    assert paired_t({0: 1.0, 1: 1.0}, {0: 0.9, 1: 0.9})["se"] == 0


def test_bootstrap_carries_seed_noise():
    # three seeds whose differences are 0.0, 0.1, 0.2 on 1000 images each, images shared.
    # Seed level alone: population sd of {0, .1, .2} = 0.08165, /sqrt(3) = 0.04714; test noise adds a little.
    N = 1000
    ref = {s: np.zeros(N, bool) for s in range(3)}
    met = {s: np.arange(N) < int(N * 0.1 * s) for s in range(3)}
    r = paired_bootstrap(met, ref, n_boot=4000)
    assert r["diff_mean"] == pytest.approx(0.1)
    assert 0.047 * 0.9 < r["se"] < 0.047 * 1.25
    assert r["p"] > 0.01  # 0 is reached whenever all three draws are seed 0 (1/27 of replicates, both tails counted)


def test_paired_t_fallback_by_hand():
    # diffs 0.10, 0.11, 0.12: t = 0.11 / (0.01/sqrt 3) = 19.05, df 2 -> p = 0.002744
    r = paired_t({0: 0.90, 1: 0.92, 2: 0.94}, {0: 0.80, 1: 0.81, 2: 0.82})
    assert r["p"] == pytest.approx(0.002744, rel=1e-3) and r["se"] == pytest.approx(0.01 / np.sqrt(3))
    assert paired_t({0: 0.9, 1: 0.9}, {0: 0.8, 1: 0.8})["p"] == 0.0  # a constant lead
    assert paired_t({0: 0.9}, {0: 0.8})["p"] is None


def test_summary_interval_stays_inside_the_bounds():
    s = summary([0.98, 1.0, 0.90], bounds=(0.0, 1.0))
    assert s["ci95"][1] == 1.0 and s["ci95"][0] == pytest.approx(0.96 - 4.302653 * 0.052915 / np.sqrt(3), abs=1e-4)
