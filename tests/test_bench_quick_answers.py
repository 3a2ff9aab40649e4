"""bench/quick_answers.py keeps issue 25's rows: both endpoints, real's gate figures, the share of the gap."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.quick_answers import criteria, markdown, summarise  # noqa: E402


def _vs(diff, p_holm, verdict, mdiff, mp, mverdict, mirrored=False):
    out = {"diff_mean": diff, "p_holm": p_holm, "mde": 0.02 if p_holm is not None else None, "verdict": verdict, "sign_changes": False,
           "minority_f1": {"metric": "minority_f1", "diff_mean": mdiff, "p_holm": mp, "mde": 0.05 if mp is not None else None,
                           "verdict": mverdict}}
    if mirrored:
        out["mirrored"] = True
    return out


def _gate(passed, tc, prec, real_tc, real_prec, failed=()):
    return {"passed": passed, "tail": ["0", "1", "2"], "tail_consistency": tc, "precision": prec, "near_copy_rate": 0.01,
            "real_tail_consistency": real_tc, "real_precision": real_prec, "failed_seeds": list(failed), "images": "the whole fill",
            "rule": "every seed", "per_seed": {"0": {"passed": passed, "tail_consistency": tc, "precision": prec}}}


def _row(method, fill, acc, mf1, vs, gate=None, share=None, **extra):
    return {"method": method, "fill": fill, "partial": False, "state": "ok", "n_seeds": 5, "steps": 500,
            "accuracy": {"mean": acc, "ci95": [acc - 0.01, acc + 0.01]}, "minority_f1": {"mean": mf1, "ci95": [mf1 - 0.02, mf1 + 0.02]},
            "minority_classes": [0, 1, 2], "converged": True, "curve_last_gain": 0.004, "curve_last_gain_minority": 0.01,
            "curve_split": "validation", "curve": [{"steps": 250, "accuracy": acc - 0.004, "minority_f1": mf1 - 0.01}],
            "gate": gate, "vs": vs, **({"share_of_gap": share} if share else {}), **extra}


NA = {"share": None, "ci95": None, "detected": False, "text": "n/a (real − none not detected)"}


def _study():
    rows = [
        _row("none", "none", 0.98, 0.985, {"oversample": _vs(-0.002, 1.0, "inconclusive", 0.001, 1.0, "inconclusive"),
                                           "real": _vs(-0.003, 0.9, "inconclusive", -0.004, 0.8, "inconclusive")}),
        _row("oversample", "oversample", 0.982, 0.984, {"none": _vs(0.002, 1.0, "inconclusive", -0.001, 1.0, "inconclusive", mirrored=True),
                                                        "real": _vs(-0.001, 1.0, "inconclusive", -0.005, 1.0, "inconclusive")},
             share={"accuracy": NA, "minority_f1": NA}),
        _row("cfg-w0.1", "cfg", 0.97, 0.96, {"none": _vs(-0.01, 0.01, "worse", -0.025, None, "below gate"),
                                             "oversample": _vs(-0.012, None, "below gate", -0.02, None, "below gate")},
             gate=_gate(False, 0.91, 0.55, 0.97, 0.70, failed=["3"]), share={"accuracy": NA, "minority_f1": NA}),
        _row("real", "real", 0.983, 0.989, {"none": _vs(0.003, 0.9, "inconclusive", 0.004, 0.8, "inconclusive", mirrored=True),
                                            "oversample": _vs(0.001, 1.0, "inconclusive", 0.005, 1.0, "inconclusive", mirrored=True)},
             gate=_gate(True, 0.97, 0.71, 0.96, 0.70), real_images={"text": "all 566 real images it needed"}),
    ]
    return {"rows": rows, "state": "done"}


def test_summarise_keeps_both_endpoints_real_gate_figures_and_shares():
    lines = {r["method"]: r for r in summarise(_study())}
    assert lines["none"]["accuracy"] == 98.0 and lines["none"]["minority_f1"] == 0.985
    assert lines["none"]["minority_f1_ci95"] == [0.965, 1.005]
    v = lines["cfg-w0.1"]["vs"]["none"]
    assert (v["diff_pts"], v["verdict"], v["minority_f1"]["diff"], v["minority_f1"]["verdict"]) == (-1.0, "worse", -0.025, "below gate")
    assert v["minority_f1"]["words"].startswith("below gate")
    g = lines["cfg-w0.1"]["gate"]
    assert (g["real_tail_consistency"], g["real_precision"], g["failed_seeds"]) == (0.97, 0.70, ["3"])
    assert lines["oversample"]["share_of_gap"]["minority_f1"]["text"] == "n/a (real − none not detected)"
    assert lines["real"]["real_images"] == "all 566 real images it needed"
    assert lines["none"]["curve"] == [{"steps": 250, "accuracy": 97.6, "minority_f1": 0.975}]


def test_criteria_count_each_unordered_pair_once_and_read_real_minus_none():
    c = criteria(_study(), 700.0)
    assert c["within_15_min"] is True and c["wall_s"] == 700.0
    # unmirrored entries: none→oversample, none→real, oversample→real, cfg→none, cfg→oversample = 5 pairs
    assert c["n_pairs"] == 5
    assert c["holm_accuracy"] == 4 and c["holm_minority_f1"] == 3  # cfg→oversample (both) and cfg→none (minority) are below gate
    assert c["minority_verdicts_in_holm"] is True
    assert c["real_row"] is True and c["real_gate_passed"] is True and c["curves_on_validation"] is True
    assert c["real_minus_none"]["accuracy"] == {"diff": 0.3, "verdict": "inconclusive", "words": "inconclusive (could not detect < 2.0 pts)",
                                                "detected": False}
    assert c["real_minus_none"]["minority_f1"]["diff"] == 0.004 and c["real_minus_none"]["minority_f1"]["detected"] is False
    assert c["shares_of_gap"]["oversample"] == {"accuracy": "n/a (real − none not detected)", "minority_f1": "n/a (real − none not detected)"}
    assert c["any_share_stated"] is False and c["a_cfg_fill_passes"] is False and c["none_minority_f1"] == 0.985
    assert criteria(_study(), 901.0)["within_15_min"] is False


def test_markdown_shows_the_gate_beside_reals_and_both_verdicts():
    md = markdown(summarise(_study()))
    assert "| cfg-w0.1 | ok | 97.0 [96.0, 98.0] | 0.960 [0.940, 0.980] | yes (+0.40 / +0.010) | ✗ 0.91 / 0.55 / 0.01 (real 0.97 / 0.70); failed seeds 3 |" in md
    assert "✓ 0.97 / 0.71 / 0.01 (real 0.96 / 0.70); all 566 real images it needed" in md
    assert "-1.00 pts, worse (p_holm = 0.01); -0.025, below gate" in md
    assert "| n/a (real − none not detected); n/a (real − none not detected) |" in md
    assert "vs real: accuracy; minority F1" in md


def test_cifar_cpu_criteria_need_the_gap_its_verdict_a_small_mde_and_three_converged_rows():
    """bench/cifar_cpu.py (issue 27): real − none ≥ 0.10 minority F1 *and* `better`; every minority MDE vs none ≤ 0.05."""
    from bench.cifar_cpu import criteria as cifar_criteria

    study = _study()
    rows = {r["method"]: r for r in study["rows"]}
    rows["real"]["vs"]["none"] = _vs(0.07, 0.001, "better", 0.12, 0.002, "better", mirrored=True)  # the study's mirrored entry
    study["cells"] = {"ok": 4, "failed": 0, "unavailable": 0, "cancelled": 0}
    c = cifar_criteria(study, 2000.0)
    assert c["real_minus_none_minority_f1"] == 0.12 and c["gap_ok"] is True
    # MDEs against none: the helper's 0.05 wherever a minority verdict against none has one (below gate has none)
    assert c["minority_mde_vs_none"] == {"oversample": 0.05, "real": 0.05} and c["max_minority_mde_vs_none"] == 0.05
    assert c["mde_ok"] is True and c["all_three_converged"] is True and c["within_60_min"] is True and c["all_met"] is True
    rows["real"]["vs"]["none"]["minority_f1"]["verdict"] = "inconclusive"  # as large, but not detected: not shown
    assert cifar_criteria(study, 2000.0)["gap_ok"] is False
    rows["real"]["vs"]["none"] = _vs(0.07, 0.001, "better", 0.09, 0.002, "better")  # detected, but under 0.10
    assert cifar_criteria(study, 2000.0)["gap_ok"] is False
    rows["oversample"]["converged"] = False
    c = cifar_criteria(study, 3601.0)
    assert c["all_three_converged"] is False and c["within_60_min"] is False and c["all_met"] is False


def test_cifar_cpu_4x_moves_are_seed_by_seed_over_the_seeds_both_ran(tmp_path):
    """bench/cifar_cpu.py compare (issue 27's 4× check): the move is mean(long − main) over the seeds both studies
    ran; < 0.02 on both endpoints passes; a missing row fails; figures are read from the cells' results.json."""
    import json

    from bench.cifar_cpu import moves, moves_markdown, per_seed

    def cell(folder, method, seed, acc, mf1, steps):
        d = folder / "cells" / f"clf__{method}__tiny__seed{seed}"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({"accuracy": acc, "minority_f1": mf1, "steps": steps}))

    main, long = tmp_path / "main", tmp_path / "long"
    for s, (a, f) in enumerate([(0.40, 0.30), (0.42, 0.20), (0.44, 0.25)]):
        for m in ("none", "oversample", "real"):
            cell(main, m, s, a, f, 2000)
    cell(main, "mixup", 0, 0.9, 0.9, 2000)  # not one of the three rows: ignored
    # 4×: seeds 0 and 1 only (seed 2 is main's alone); none moves +0.01 and +0.04 accuracy (mean +0.025: not < 0.02)
    cell(long, "none", 0, 0.41, 0.30, 8000); cell(long, "none", 1, 0.46, 0.20, 8000)
    cell(long, "oversample", 0, 0.39, 0.31, 8000); cell(long, "oversample", 1, 0.42, 0.18, 8000)
    got = per_seed(main)
    assert set(got) == {"none", "oversample", "real"} and got["none"][1] == {"accuracy": 0.42, "minority_f1": 0.20, "steps": 2000}
    res = moves(got, per_seed(long))
    assert res["rows"]["none"]["seeds"] == [0, 1] and res["rows"]["none"]["steps"] == [2000, 8000]
    assert res["rows"]["none"]["move_accuracy"] == 0.025 and res["rows"]["none"]["ok"] is False
    # oversample: accuracy (−0.01 + 0.00)/2 = −0.005, minority F1 (+0.01 − 0.02)/2 = −0.005: inside both limits
    assert res["rows"]["oversample"]["move_accuracy"] == -0.005 and res["rows"]["oversample"]["move_minority_f1"] == -0.005
    assert res["rows"]["oversample"]["ok"] is True and res["rows"]["oversample"]["main"] == {"accuracy": 0.41, "minority_f1": 0.25}
    assert res["missing"] == ["real"] and res["all_ok"] is False
    md = moves_markdown(res)
    assert "| oversample | 2 | 2000 → 8000 | 41.0 → 40.5 (-0.5) | 0.250 → 0.245 (-0.005) | yes |" in md
    assert "| real | missing | | | | no |" in md
