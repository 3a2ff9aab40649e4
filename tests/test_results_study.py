"""Issue 25 item 7: the Results page shows what one study measured. Two studies of different steps on one
dataset: ?study=ID selects that study in "Results from" and the heat map shows only its rows; under "all"
each setting is its own heat-map row, never one study's `none` averaged with the other's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.test_study_report import make_study

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _second_study(first: Path) -> Path:
    """A copy of the fixture study trained for 22 steps, every per-class F1 lowered to 0.5."""
    second = first.parent / "20260102-000000-study-long"
    shutil.copytree(first, second)
    for cell in (second / "cells").glob("clf__*"):
        cfg = json.loads((cell / "config.json").read_text())
        (cell / "config.json").write_text(json.dumps({**cfg, "steps": 22}))
        res = json.loads((cell / "results.json").read_text())
        (cell / "results.json").write_text(json.dumps({**res, "steps": 22, "per_class_f1": [0.5, 0.5, 0.5]}))
    return second


def _heatmap(at) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if any(t.get("type") == "heatmap" for t in s["data"]) and "per-class F1" in str(s["layout"].get("title")))


def test_a_study_link_shows_that_study_only_and_all_never_merges_settings(runs_root, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    first = make_study(runs_root)
    second = _second_study(first)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/results.py")
    at.query_params["study"] = first.name  # the Study page's "This study in Results" link
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="res_source").value == first.name, (at.selectbox(key="res_source").options, dict(at.query_params))
    hm = _heatmap(at)["data"][0]
    assert len(hm["y"]) == 2 and all(0.5 not in row for row in hm["z"])  # only the first study's none and cfg rows
    # "all": one heat-map row per setting (2 methods × 2 step budgets), the 22-step rows at 0.5 apart from the 60-step rows
    at.selectbox(key="res_source").set_value("all").run()
    hm = _heatmap(at)["data"][0]
    assert len(hm["y"]) == 4 and len(set(hm["y"])) == 4
    long_rows = [row for row in hm["z"] if all(v == 0.5 for v in row)]
    assert len(long_rows) == 2 and all(0.5 not in row for row in hm["z"] if row not in long_rows)
