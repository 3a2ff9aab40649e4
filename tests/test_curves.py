"""Budget curves (core.study.curves) and how a study's rows use them: points, the converged rule,
the "under-trained" label and sign changes along the curve, on numbers worked out by hand."""

import pytest

from core.study.curves import along_curve, convergence, curve_steps, mean_curve, scaled_warmup, sign_changes
from core.study.stats import describe_verdict
from core.study.rows import add_comparisons


def test_curve_steps_halve_down_from_the_budget():
    assert curve_steps(113) == [15, 29, 57, 113]  # ⌈113/8⌉, ⌈113/4⌉, ⌈113/2⌉, 113
    assert curve_steps(20) == [3, 5, 10, 20]  # a tiny budget still has 4 points
    assert curve_steps(6) == [1, 2, 3, 6]
    assert curve_steps(2) == [1, 2]  # too small for 4: repeats dropped
    assert curve_steps(1) == [1]
    assert curve_steps(100, points=2) == [50, 100]
    assert scaled_warmup(20, 57, 113) == 10 and scaled_warmup(0, 5, 10) == 0  # 20·57/113 = 10.09


def test_mean_curve_averages_each_steps_value_over_seeds():
    per_seed = {0: [{"steps": 5, "accuracy": 0.5, "minority_f1": 0.2}, {"steps": 10, "accuracy": 0.8, "minority_f1": 0.6}],
                1: [{"steps": 5, "accuracy": 0.7, "minority_f1": 0.4}, {"steps": 10, "accuracy": 0.9, "minority_f1": None}]}
    c = mean_curve(per_seed)
    assert [p["steps"] for p in c] == [5, 10] and [p["n_seeds"] for p in c] == [2, 2]
    assert c[0]["accuracy"] == pytest.approx(0.6) and c[0]["minority_f1"] == pytest.approx(0.3)
    assert c[1]["accuracy"] == pytest.approx(0.85) and c[1]["minority_f1"] is None  # a missing value is not averaged away


@pytest.mark.parametrize("last, converged", [(0.909, True), (0.9099, True), (0.9101, False), (0.85, True), (0.95, False)])
def test_converged_rule_is_the_last_doubling_gaining_under_one_point(last, converged):
    curve = [{"steps": 15, "accuracy": 0.6}, {"steps": 29, "accuracy": 0.8}, {"steps": 57, "accuracy": 0.9}, {"steps": 113, "accuracy": last}]
    c = convergence(curve)
    assert c["converged"] is converged and c["last_gain"] == pytest.approx(last - 0.9)
    assert "< 1 accuracy point" in c["rule"]
    assert convergence(curve, gain=0.2)["converged"] is (last - 0.9 < 0.2)


def test_convergence_needs_a_doubling_of_two_points():
    assert convergence([{"steps": 10, "accuracy": 0.9}])["converged"] is False
    far = convergence([{"steps": 10, "accuracy": 0.9}, {"steps": 40, "accuracy": 0.9}])
    assert far["converged"] is False and "not a doubling" in far["rule"]


def test_along_curve_and_sign_changes():
    m = {10: {0: 0.5, 1: 0.7}, 20: {0: 0.9, 1: 0.9}, 40: {0: 0.9}}
    r = {10: {0: 0.6, 1: 0.8}, 20: {0: 0.8, 1: 0.8}, 40: {1: 0.9}}
    pts = along_curve(m, r)
    assert [p["steps"] for p in pts] == [10, 20]  # no seed in common at 40
    assert pts[0]["diff"] == pytest.approx(-0.1) and pts[1]["diff"] == pytest.approx(0.1)
    assert sign_changes(pts) is True
    assert sign_changes([{"steps": 1, "diff": 0.0}, {"steps": 2, "diff": 0.1}]) is False  # zeros ignored


def _row(method, accs, converged, curve_acc):
    return {"method": method, "classifier": "small", "_acc": dict(enumerate(accs)), "_correct": None, "converged": converged,
            "_curve_acc": curve_acc}


def test_an_unconverged_comparison_is_labelled_and_left_out_of_holm():
    # paired t over 3 seeds (no per-image results): differences +0.05, +0.06, +0.07
    none = _row("none", [0.80, 0.80, 0.80], True, {10: {0: 0.7, 1: 0.7, 2: 0.7}, 20: {0: 0.8, 1: 0.8, 2: 0.8}})
    good = _row("good", [0.85, 0.86, 0.87], True, {10: {0: 0.6, 1: 0.6, 2: 0.6}, 20: {0: 0.85, 1: 0.86, 2: 0.87}})
    slow = _row("slow", [0.85, 0.86, 0.87], False, {10: {0: 0.8, 1: 0.8, 2: 0.8}, 20: {0: 0.85, 1: 0.86, 2: 0.87}})
    add_comparisons([none, good, slow], ["none"])
    g, s = good["vs"]["none"], slow["vs"]["none"]
    # Holm's family holds only good's comparison (m = 1): p_holm = p
    assert g["p_holm"] == pytest.approx(g["p"]) and g["verdict"] == "better" and g["mde"] is not None
    assert s["verdict"] == "under-trained" and s["p_holm"] is None and s["not_converged"] == ["slow"]
    assert s["diff_mean"] == pytest.approx(0.06) and s["p"] == pytest.approx(g["p"])
    # good was behind at 10 steps (−0.1) and ahead at 20: the sign changes along the curve, and the wording says so
    assert g["sign_changes"] is True and [round(d["diff"], 3) for d in g["along_curve"]] == [-0.1, 0.06]
    assert describe_verdict(g).startswith("better (p_holm = ") and describe_verdict(g).endswith("the sign changes along the budget curve")
    assert describe_verdict(s) == "under-trained, not concluded (slow not converged)"
    assert "_curve_acc" not in good and "se" not in s


# ------------------------------------------------------------------ issue 25: both endpoints, unordered pairs, detected sign changes
def test_converged_needs_both_endpoints():
    # accuracy +0.5 pts on the last doubling (< 1), minority F1 +0.03 (not < 0.02): not converged
    c = [{"steps": 10, "accuracy": 0.900, "minority_f1": 0.60}, {"steps": 20, "accuracy": 0.905, "minority_f1": 0.63}]
    r = convergence(c)
    assert r["converged"] is False and r["last_gain"] == pytest.approx(0.005) and r["last_gain_minority"] == pytest.approx(0.03)
    c[1]["minority_f1"] = 0.615  # +0.015 < 0.02: converged
    assert convergence(c)["converged"] is True
    assert convergence(c, minority_gain=0.01)["converged"] is False
    assert "0.02 minority F1" in convergence(c)["rule"]


def test_a_sign_change_is_flagged_only_where_both_sides_are_detected():
    # at 10 steps −0.1 on every seed (detected), at 20 steps +0.06 on every seed (detected): flagged
    m = {10: {0: 0.6, 1: 0.6, 2: 0.6}, 20: {0: 0.86, 1: 0.86, 2: 0.86}}
    r = {10: {0: 0.7, 1: 0.7, 2: 0.7}, 20: {0: 0.80, 1: 0.80, 2: 0.80}}
    pts = along_curve(m, r)
    assert [p["detected"] for p in pts] == [True, True] and sign_changes(pts) is True
    # at 10 steps −0.0022 on the mean but the seeds disagree (−0.01, +0.01, −0.0067): not detected, not a sign change
    m[10] = {0: 0.69, 1: 0.71, 2: 0.6933}
    pts = along_curve(m, r)
    assert pts[0]["detected"] is False and pts[0]["diff"] < 0 < pts[1]["diff"] and sign_changes(pts) is False


def _row2(method, accs, minority):
    return {"method": method, "classifier": "small", "_acc": dict(enumerate(accs)), "_correct": None, "converged": True,
            "_per_seed": {"accuracy": dict(enumerate(accs)), "minority_f1": dict(enumerate(minority))}, "_curve_acc": {},
            "minority_classes": [0]}


def test_each_unordered_pair_once_in_holm_and_minority_f1_in_the_family():
    from scipy import stats as st

    none = _row2("none", [0.80, 0.81, 0.82], [0.50, 0.52, 0.55])
    over = _row2("oversample", [0.90, 0.92, 0.94], [0.60, 0.61, 0.66])
    add_comparisons([none, over], ["none", "oversample"])
    a, b = none["vs"]["oversample"], over["vs"]["none"]
    # accuracy: none − oversample = −0.10, −0.11, −0.12 -> p = 0.0027435; minority F1: −0.10, −0.09, −0.11 -> p = 0.0033
    p_acc = st.ttest_rel([0.80, 0.81, 0.82], [0.90, 0.92, 0.94]).pvalue
    p_min = st.ttest_rel([0.50, 0.52, 0.55], [0.60, 0.61, 0.66]).pvalue
    assert a["p"] == pytest.approx(p_acc) and a["minority_f1"]["p"] == pytest.approx(p_min)
    # the Holm family has 2 members (one pair, two endpoints), not 4: sorted p_acc < p_min -> 2·p_acc, max(2·p_acc, p_min)
    assert a["p_holm"] == pytest.approx(2 * p_acc) and a["minority_f1"]["p_holm"] == pytest.approx(max(2 * p_acc, p_min))
    # the other orientation mirrors it: the same p and p_holm, the difference negated, the verdict flipped
    assert b["mirrored"] is True and b["p_holm"] == a["p_holm"] and b["diff_mean"] == pytest.approx(0.11)
    assert a["verdict"] == "worse" and b["verdict"] == "better" and b["minority_f1"]["verdict"] == "better"
    assert b["ci95"] == pytest.approx([-a["ci95"][1], -a["ci95"][0]])
    assert b["minority_f1"]["diff_mean"] == pytest.approx(0.10)
