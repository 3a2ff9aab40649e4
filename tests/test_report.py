"""core.study.tables.group_runs: runs pooled only when every setting but the seeds is the same."""

from __future__ import annotations

import pandas as pd
import pytest

from core.study.tables import group_runs, settings_of


def _row(run_id, seed, acc, **cfg):
    base = {"arch": "small", "epochs": 30, "lr": 0.1, "seed": seed, "device": "cpu", "eval_every": 1,
            "data": {"dataset": "digits", "profile": "paper", "seed": seed}, "balance_method": "none"}
    base.update(cfg)
    return {"run_id": run_id, "method": "none", "classifier": base["arch"], "seed": seed, "steps": base["epochs"] * 10,
            "accuracy": acc, "macro_f1": acc, "minority_f1": None, "settings": settings_of(base)}


def test_seeds_device_and_logging_do_not_split_a_group():
    df = pd.DataFrame([_row("a", 0, 0.80), _row("b", 1, 0.84, device="cuda", eval_every=5), _row("c", 2, 0.82)])
    g = group_runs(df)
    assert len(g) == 1 and g["n"].iloc[0] == 3 and g["label"].iloc[0] == "none · small"
    # mean 0.82, std 0.02, t(0.975, 2) = 4.303 -> half-width 4.303 * 0.02 / sqrt(3) = 0.04969
    assert g["accuracy_mean"].iloc[0] == pytest.approx(0.82)
    assert g["accuracy_hi"].iloc[0] - 0.82 == pytest.approx(0.04969, abs=1e-4)
    assert g["minority_f1_mean"].iloc[0] is None and g["steps"].iloc[0] == "300"


def test_other_settings_split_and_are_named():
    df = pd.DataFrame([_row("a", 0, 0.11, epochs=5), _row("b", 0, 0.96), _row("c", 0, 0.95, lr=0.05)])
    g = group_runs(df).set_index("label")
    assert set(g.index) == {"none · small (epochs=5, lr=0.1)", "none · small (epochs=30, lr=0.1)", "none · small (epochs=30, lr=0.05)"}
    assert (g["n"] == 1).all() and g["accuracy_lo"].isna().all()  # one run each: no CI
