"""Issue 25 item 3: the minority is a primary endpoint, shown beside accuracy in the CLI table and the Results verdict table."""

import pandas as pd
import pytest

from core.study.rows import add_comparisons


def _row(method, accs, minority):
    return {"method": method, "classifier": "small", "state": "ok", "n_seeds": len(accs), "steps": 100, "images_seen": 6400,
            "train_size": 500, "accuracy": {"mean": sum(accs) / len(accs), "std": 0.01, "ci95": [0.0, 1.0]},
            "macro_f1": {"mean": 0.8, "std": 0.01, "ci95": None}, "minority_f1": {"mean": sum(minority) / len(minority), "std": 0.01, "ci95": None},
            "accuracy_binomial_hw95": 0.02, "_acc": dict(enumerate(accs)), "_correct": None, "converged": True, "_curve_acc": {},
            "_per_seed": {"accuracy": dict(enumerate(accs)), "minority_f1": dict(enumerate(minority))}, "minority_classes": [0, 1]}


@pytest.fixture
def rows():
    rs = [_row("none", [0.80, 0.81, 0.82], [0.50, 0.52, 0.55]), _row("oversample", [0.80, 0.82, 0.81], [0.60, 0.61, 0.66])]
    add_comparisons(rs, ["none", "oversample"])
    return rs


def test_the_cli_table_shows_both_endpoints(rows):
    from core.commands.experiment import render_table

    table = render_table(rows)
    head = table.splitlines()[0]
    assert "vs none (Δacc, verdict)" in head and "vs none (Δminority F1, verdict)" in head
    over = next(line for line in table.splitlines() if line.startswith("| oversample "))
    # minority F1 − none's: +0.10, +0.09, +0.11 -> mean +0.100
    assert "+0.100 [" in over


def test_the_results_verdict_table_has_a_line_per_endpoint(rows):
    from core.study.tables import verdict_table

    frame = pd.DataFrame([{**r, "study": "s"} for r in rows])
    t = verdict_table(frame)
    assert t[t["method"] == "oversample"]["metric"].tolist() == ["accuracy", "minority_f1"]
    assert t[(t["method"] == "oversample") & (t["metric"] == "minority_f1")]["difference"].iloc[0] == pytest.approx(0.10)
