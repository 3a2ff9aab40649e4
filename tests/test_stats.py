"""Seed statistics worked out by hand."""

import math

import pytest

from core.study.stats import binomial_ci, binomial_halfwidth, paired, summary, verdict


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

from scipy import stats as st  # noqa: E402

from core.study.stats import ALPHA, describe_verdict, holm, holm_verdict, mde, paired_t, paired_test  # noqa: E402


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


def _pairs(correct: dict, n_images: int) -> dict:
    """seed -> (predictions, labels) for a binary right/wrong vector: label 0, prediction 0 when right."""
    return {s: (np.where(c, 0, 1), np.zeros(n_images, int)) for s, c in correct.items()}


def test_identical_methods_give_p_one():
    rng = np.random.default_rng(0)
    c = _pairs({s: rng.random(300) < 0.8 for s in range(3)}, 300)
    r = paired_test(c, c, n_boot=200)
    assert r["diff_mean"] == 0 and r["p"] == 1.0 and r["ci95"] == [0.0, 0.0] and r["se"] == 0.0


def test_a_lead_the_same_on_every_seed_is_tested_against_the_shared_test_set_term():
    # method right on all 200 images, reference wrong on every 10th, on every seed: d_s = 0.1, no seed spread.
    # The shared term is the test set's alone: the per-image differences (0 or 1, mean 0.1) have variance
    # 0.1·0.9 = 0.09, so V_common = 0.09/200 and SE = 0.0212; t = 0.1/0.0212 = 4.71 on 2 df -> p = 0.042.
    ref = _pairs({s: np.arange(200) % 10 != 0 for s in range(3)}, 200)
    met = _pairs({s: np.ones(200, bool) for s in range(3)}, 200)
    r = paired_test(met, ref, n_boot=4000)
    assert r["diff_mean"] == pytest.approx(0.1) and r["n"] == 3 and r["seeds"] == [0, 1, 2] and r["df"] == 2
    assert r["se"] == pytest.approx(np.sqrt(0.09 / 200), rel=0.06)
    assert r["p"] == pytest.approx(2 * st.t.sf(0.1 / np.sqrt(0.09 / 200), 2), abs=0.006)
    # seeds that tested different images share no term: SE 0, a certain difference
    assert paired_test(met, ref, labels_equal=False)["p"] == 0.0


def test_seed_spread_by_hand():
    # three seeds whose differences are 0.0, 0.1, 0.2 on 1000 images, which the seeds test alike: the
    # method is right on the first 100·s images, the reference on none. s_d = 0.1, s_d²/3 = 0.003333; the shared
    # term: cov over images of the seeds' 0/1 differences, e.g. seeds 1 and 2: 0.1 − 0.1·0.2 = 0.08, /1000.
    N = 1000
    ref = _pairs({s: np.zeros(N, bool) for s in range(3)}, N)
    met = _pairs({s: np.arange(N) < 100 * s for s in range(3)}, N)
    r = paired_test(met, ref, n_boot=4000)
    assert r["diff_mean"] == pytest.approx(0.1)
    se = np.sqrt(0.01 / 3 + (0 + 0 + 0.08) / 3 / N)  # pairs (0,1), (0,2) have covariance 0
    assert r["se"] == pytest.approx(se, rel=0.02)
    assert r["p"] == pytest.approx(2 * st.t.sf(0.1 / se, 2), rel=0.05)
    assert r["ci95"][0] < 0 < r["ci95"][1]


def test_minority_f1_endpoint_by_hand():
    # 4 images, labels 0 0 1 1, minority class 0. method: 0 0 1 1 (F1_0 = 1); reference: 0 1 1 1 (TP 1, P 1, T 2: F1_0 = 2/3)
    labels = np.array([0, 0, 1, 1])
    met = {s: (np.array([0, 0, 1, 1]), labels) for s in range(2)}
    ref = {0: (np.array([0, 1, 1, 1]), labels), 1: (np.array([1, 1, 1, 1]), labels)}  # seed 1: class 0 never predicted, F1 0
    r = paired_test(met, ref, metric="minority_f1", minority=[0], labels_equal=False)
    assert r["diff_mean"] == pytest.approx(((1 - 2 / 3) + (1 - 0)) / 2)
    assert r["metric"] == "minority_f1"
    from core.study.stats import weighted_metric

    assert weighted_metric(np.array([0, 1, 1, 1]), labels, np.ones((1, 4)), "minority_f1", [0])[0] == pytest.approx(2 / 3)
    # weight 2 on image 1 (a second copy of the missed class-0 image): TP 1, P 1, T 3 -> F1 = 2/4
    assert weighted_metric(np.array([0, 1, 1, 1]), labels, np.array([[1.0, 2, 1, 1]]), "minority_f1", [0])[0] == pytest.approx(0.5)


def test_one_seed_gives_no_test():
    c = _pairs({0: np.ones(50, bool)}, 50)
    r = paired_test(c, _pairs({0: np.zeros(50, bool)}, 50))
    assert r["p"] is None and r["diff_mean"] == 1.0


# The issue 25 simulations: seed effects plus test noise, 360 test images. Each study draws image difficulties
# (shared by both methods), a method-specific image effect (shared by that method's seeds: the part of the test
# set's luck that all seeds share) and a logit shift per method and seed (sd 0.5 or 1); correctness is a
# Bernoulli draw per image. Vectorised over studies, so 400 studies of 5 seeds take a few seconds.
def _studies(rng, n_studies, n_seeds, delta, seed_sd, N=360):
    from scipy.special import expit

    z = rng.normal(1.5, 1.5, (n_studies, 1, 1, N))
    v = rng.normal(0, 0.5, (n_studies, 2, 1, N))
    u = rng.normal(0, seed_sd, (n_studies, 2, n_seeds, 1))
    right = rng.random((n_studies, 2, n_seeds, N)) < expit(z + v + u + np.array([delta, 0.0]).reshape(1, 2, 1, 1))
    return [(_pairs(dict(enumerate(right[k, 0])), N), _pairs(dict(enumerate(right[k, 1])), N)) for k in range(n_studies)]


@pytest.mark.parametrize("n_seeds,seed_sd", [(3, 0.5), (3, 1.0), (5, 0.5), (5, 1.0)])
def test_null_simulation_keeps_the_nominal_size(n_seeds, seed_sd):
    rng = np.random.default_rng(100 + n_seeds)
    ps = [paired_test(m, r, n_boot=200)["p"] for m, r in _studies(rng, 400, n_seeds, 0.0, seed_sd)]
    assert np.mean(np.array(ps) < ALPHA) <= 0.07  # the old seed bootstrap: 12.5-18 %


def _expected_diff(delta, seed_sd, n_seeds=5):
    """The mean accuracy difference a logit shift delta makes in this simulation (common random numbers)."""
    studies = _studies(np.random.default_rng(7), 300, n_seeds, delta, seed_sd)
    return float(np.mean([np.mean([(m[s][0] == 0).mean() - (r[s][0] == 0).mean() for s in m]) for m, r in studies]))


@pytest.mark.parametrize("seed_sd", [0.25, 0.5])
def test_power_simulation_a_difference_of_the_reported_mde_is_found(seed_sd):
    from scipy.optimize import brentq

    rng = np.random.default_rng(5)
    null = [paired_test(m, r, n_boot=200) for m, r in _studies(rng, 400, 5, 0.0, seed_sd)]
    reported = float(np.mean([mde(x["se"], 1, df=x["df"]) for x in null]))  # the MDE these studies report (one comparison)
    delta = brentq(lambda d: _expected_diff(d, seed_sd) - reported, 0.0, 5.0, xtol=1e-3)
    hits = [paired_test(m, r, n_boot=200)["p"] < ALPHA for m, r in _studies(rng, 400, 5, delta, seed_sd)]
    print(f"seed sd {seed_sd}: mde {reported:.4f}, power {np.mean(hits):.3f}")
    assert np.mean(hits) >= 0.70


def test_paired_t_fallback_by_hand():
    # diffs 0.10, 0.11, 0.12: t = 0.11 / (0.01/sqrt 3) = 19.05, df 2 -> p = 0.002744
    r = paired_t({0: 0.90, 1: 0.92, 2: 0.94}, {0: 0.80, 1: 0.81, 2: 0.82})
    assert r["p"] == pytest.approx(0.002744, rel=1e-3) and r["se"] == pytest.approx(0.01 / np.sqrt(3))
    assert paired_t({0: 0.9, 1: 0.9}, {0: 0.8, 1: 0.8})["p"] == 0.0  # a constant lead
    assert paired_t({0: 0.9}, {0: 0.8})["p"] is None


def test_summary_interval_stays_inside_the_bounds():
    s = summary([0.98, 1.0, 0.90], bounds=(0.0, 1.0))
    assert s["ci95"][1] == 1.0 and s["ci95"][0] == pytest.approx(0.96 - 4.302653 * 0.052915 / np.sqrt(3), abs=1e-4)
