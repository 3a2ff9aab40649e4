"""The study report (`python -m core report STUDY --html FILE`): one self-contained HTML file.

A fixture study folder written by hand (config.json, results.json, two classifier cells per
method and one fill cell) stands in for a finished study, so every number below is known. The
browser test opens the file in headless Chromium with every request that is not the file itself
aborted, and checks that each chart was drawn.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from core.cli import main
from core.study.report import NOT_RECORDED, build_html, charts, write_html

CHROMIUM = "/usr/bin/chromium"
CLASSES = ["zero", "one", "two"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# per seed: confusion matrices (rows true class) of 10 test images per class
CM = {("none", 0): [[9, 1, 0], [2, 8, 0], [1, 4, 5]], ("none", 1): [[10, 0, 0], [1, 9, 0], [2, 3, 5]],
      ("cfg@w=7.5", 0): [[9, 1, 0], [1, 9, 0], [0, 2, 8]], ("cfg@w=7.5", 1): [[8, 2, 0], [1, 9, 0], [0, 1, 9]]}
N_CHARTS = 9  # accuracy, macro-F1, minority-F1, per-class F1 (small), 2 confusion, FD (judge), KID, novelty


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _m(mean, lo=None, hi=None):
    return {"mean": mean, "std": None if lo is None else 0.01, "ci95": None if lo is None else [lo, hi]}


def make_study(root: Path, provenance: bool = True, gates: bool = False) -> Path:
    study = root / "20260101-000000-study-fixture"
    cfg = {"kind": "study", "name": "fixture", "methods": ["none", "cfg"], "cfg_ws": [7.5], "classifiers": ["small"],
           "seeds": [0, 1], "data": {"dataset": "digits", "profile": "paper", "seed": 0}, "classifier": {"steps": 60, "lr": 0.05}}
    if provenance:
        cfg.update(commit=COMMIT, dirty=False, versions={"torch": "2.5.1", "plotly": "7.1.0", "python": "3.11.2"}, device="cpu")
    _write(study / "config.json", cfg)
    rows = []
    for method, acc in (("none", 0.80), ("cfg@w=7.5", 0.85)):
        row = {"method": method, "classifier": "small", "state": "ok", "steps": 60, "images_seen": 1920, "train_size": 300,
               "n_seeds": 2, "seeds": [0, 1], "budget": "steps", "errors": {}, "reason": None,
               "accuracy": _m(acc, acc - 0.02, acc + 0.02), "macro_f1": _m(acc - 0.01, acc - 0.03, acc + 0.01),
               "minority_f1": _m(acc - 0.1, acc - 0.15, acc - 0.05), "accuracy_binomial_hw95": 0.1225,
               "vs": {} if method == "none" else {"none": {"metric": "accuracy", "diff_mean": 0.05, "ci95": [-0.01, 0.11],
                                                          "verdict": "inconclusive"}}}
        if method != "none":
            row.update(near_copy_rate=_m(0.1), precision=_m(0.7), recall=_m(0.4))
        if gates:
            row["curve"] = [{"steps": s, "accuracy": acc * s / 60, "minority_f1": (acc - 0.1) * s / 60} for s in (15, 30, 45, 60)]
            if method != "none":
                row["gate"] = {"passed": True, "tail_consistency": 0.91, "precision": 0.7, "near_copy_rate": 0.1, "rule": "default"}
        rows.append(row)
        for seed in (0, 1):
            cell = study / "cells" / f"clf__{method.replace('@w=', '_w')}__small__seed{seed}"
            cm = CM[(method, seed)]
            f1 = [round(2 * cm[c][c] / (sum(cm[c]) + sum(r[c] for r in cm)), 4) for c in range(3)]
            _write(cell / "config.json", {"kind": "classifier", "arch": "small", "seed": seed, "study_method": method,
                                          "data": {"dataset": "digits", "profile": "paper", "seed": seed}})
            _write(cell / "results.json", {"accuracy": sum(cm[c][c] for c in range(3)) / 30, "macro_f1": sum(f1) / 3, "minority_f1": f1[2],
                                           "per_class_f1": f1, "confusion_matrix": cm, "classes": CLASSES, "minority_classes": [2],
                                           "arch": "small", "n": 30, "steps": 60})
    for seed, fd in ((0, 12.5), (1, 14.5)):
        _write(study / "cells" / f"fill__cfg_w7.5__seed{seed}" / "results.json",
               {"name": "cfg@w=7.5", "seed": seed, "generation": {"key": "fd_judge", "fd_judge": fd, "label": "FD (judge CNN features)",
                                                                  "kid": 0.01, "kid_label": "KID (judge)", "n_images": 300}})
    _write(study / "results.json", {"study": "fixture", "budget": "steps", "rows": rows, "state": "done", "test_size": 30,
                                    "cells": {"ok": 8, "failed": 0, "unavailable": 0, "cancelled": 0},
                                    "notes": ["ci95 is a Student-t 95% interval over seeds"]})
    _write(study / "status.json", {"state": "done"})
    return study


def test_the_report_holds_every_chart_table_and_the_provenance(tmp_path):
    study = make_study(tmp_path)
    page = build_html(study)
    figs = charts(study)
    assert len(figs) == N_CHARTS and page.count('class="plotly-graph-div"') == N_CHARTS
    # plotly.js once, inline; nothing loaded from elsewhere
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()) == 1
    rest = page.replace(get_plotlyjs(), "")
    assert "src=" not in rest and "http" not in rest and rest.count("<script") == 1 + N_CHARTS
    # provenance, the results and verdict tables, the config
    assert COMMIT in page and "<td>2.5.1</td>" in page and "<td>torch</td>" in page
    assert "<td>cfg@w=7.5</td>" in page and "<td>0.8500</td>" in page and "<td>[0.8300, 0.8700]</td>" in page
    assert "<td>[-0.0100, +0.0110]</td>" not in page and "<td>[-0.0100, +0.1100]</td>" in page and "<td>inconclusive</td>" in page
    assert "<td>data.profile</td>" in page and "<td>classifier.steps</td>" in page
    # gates and budget curves are not in this study's rows yet
    assert page.count(NOT_RECORDED) == 2
    # the confusion matrix of a method is the sum over its seeds: none's true "two" row: 1+2, 4+3, 5+5
    cm = dict(figs)["Confusion matrix, none · small (summed over 2 seed(s)); rows: true class"]
    assert cm.data[0].text.tolist() == [[19, 1, 0], [3, 17, 0], [3, 7, 10]]
    acc = figs[0][1].data[0]
    assert list(acc.x) == ["none", "cfg@w=7.5"] and list(acc.y) == pytest.approx([80.0, 85.0])
    assert list(acc.error_y.array) == pytest.approx([2.0, 2.0])
    fd = dict(figs)["FD (judge CNN features) of (imbalanced + generated) vs the full train split, lower is better; bars: ±1 std over seeds"]
    assert list(fd.data[0].y) == [13.5]  # mean of 12.5 and 14.5


def test_gates_and_budget_curves_render_once_rows_carry_them(tmp_path):
    study = make_study(tmp_path, gates=True)
    page = build_html(study)
    figs = charts(study)
    assert len(figs) == N_CHARTS + 2 and NOT_RECORDED not in page
    curve = dict(figs)["Budget curve: accuracy against training steps (mean over seeds)"]
    assert [t.name for t in curve.data] == ["none · small", "cfg@w=7.5 · small"] and list(curve.data[1].x) == [15, 30, 45, 60]
    assert list(curve.data[1].y) == pytest.approx([0.2125, 0.425, 0.6375, 0.85])
    assert "<td>0.9100</td>" in page and "<td>default</td>" in page  # cfg's gate: tail consistency and rule


def test_without_provenance_it_says_not_recorded(tmp_path):
    page = build_html(make_study(tmp_path, provenance=False))
    assert re.search(r"<td>commit</td>\s*<td>not recorded</td>", page) and COMMIT not in page
    assert "<h3>Package versions</h3><p class='none'>not recorded</p>" in page


def test_cli_writes_the_file_and_refuses_a_folder_that_is_no_study(tmp_path, capsys):
    study = make_study(tmp_path)
    out = tmp_path / "out" / "fixture.html"
    assert main(["report", str(study), "--html", str(out)]) == 0
    assert out.read_text().count('class="plotly-graph-div"') == N_CHARTS and f"wrote {out}" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--html", str(tmp_path / "x.html")]) == 2
    assert "is not a study folder" in capsys.readouterr().err and not (tmp_path / "x.html").exists()
    (study / "results.json").unlink()
    assert main(["report", str(study)]) == 2 and "has no results.json yet" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_the_report_renders_offline_in_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} not found (CI must run the browser tests)")
        pytest.skip(f"{CHROMIUM} not found (Debian's chromium package)")
    sync_api = pytest.importorskip("playwright.sync_api")
    out = write_html(make_study(tmp_path, gates=True), tmp_path / "report.html")
    n = N_CHARTS + 2
    left: list[str] = []

    def only_the_file(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                   "--no-first-run", "--disable-background-networking"])
        ctx = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
        ctx.route("**/*", only_the_file)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}", timeout=60_000)
        drawn = page.evaluate("""() => [...document.querySelectorAll('div.plotly-graph-div')].map(d =>
            [d.id, d.classList.contains('js-plotly-plot'), d.querySelectorAll('.main-svg').length,
             d.querySelectorAll('.trace, .hm, .heatmaplayer image').length])""")
        browser.close()
    assert errors == [] and left == []
    assert [d[0] for d in drawn] == [f"chart-{i}" for i in range(1, n + 1)]
    assert all(d[1] and d[2] >= 1 for d in drawn), drawn  # each div became a plot with its svg
    assert all(d[3] >= 1 for d in drawn), drawn  # and has at least one drawn trace (bars, lines or a heatmap)


def test_results_page_offers_the_report_of_each_study(runs_root, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    study = make_study(runs_root)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/results.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="res_report_study").options == [study.name]
    buttons = [b for b in at.get("download_button") if b.proto.label == "Download study report (HTML)"]
    assert len(buttons) == 1


@pytest.mark.timeout(600)
def test_the_report_of_a_real_tiny_study(tmp_path, monkeypatch):
    """A study run for real (none, oversample, cfg@w=7.5 on digits, one seed, a few steps; generation metrics off)."""
    from core.study.run import load_results, run_study
    from tests.test_study_executors import small_study

    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "study"
    run_study(small_study(), root)
    rows = load_results(root)["rows"]
    assert [r["method"] for r in rows] == ["none", "oversample", "cfg@w=7.5"] and {r["state"] for r in rows} == {"ok"}
    figs = charts(root)
    # accuracy, macro-F1, minority-F1, per-class F1 of "small", one confusion matrix per method; the budget
    # curves (2 charts) once rows carry them (issue 17)
    curves = 2 if any(r.get("curve") for r in rows) else 0
    assert [t.split(",")[0].split(" per ")[0] for t, _ in figs[:4]] == ["Test accuracy (%)", "Macro-F1", "Minority-class F1", "Per-class F1 of every method"]
    assert len(figs) == 7 + curves and sum(t.startswith("Confusion matrix") for t, _ in figs) == 3
    page = build_html(root)
    assert page.count('class="plotly-graph-div"') == 7 + curves
    for r in rows:  # every row's accuracy in the results table, as the JSON has it
        assert f"<td>{r['method']}</td>" in page and f"<td>{r['accuracy']['mean']:.4f}</td>" in page
    cm = dict(figs)["Confusion matrix, none · small (summed over 1 seed(s)); rows: true class"].data[0].text
    assert int(cm.sum()) == 360  # digits' test split


def test_results_page_draws_the_budget_curves_of_the_chosen_study(runs_root, tmp_path, monkeypatch):
    import json as _json

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    study = make_study(runs_root, gates=True)
    res = _json.loads((study / "results.json").read_text())
    res["rows"][1]["converged"] = False  # cfg@w=7.5: its line is dashed and named "(not converged)"
    res["rows"][0]["converged"] = True
    _write(study / "results.json", res)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/results.py").run()
    assert not at.exception, [e.value for e in at.exception]
    specs = [_json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    curves = [s for s in specs if s["layout"].get("xaxis", {}).get("title", {}).get("text") == "optimizer steps (log scale)"]
    assert len(curves) == 2  # accuracy and minority F1
    acc = curves[0]
    assert [t["name"] for t in acc["data"]] == ["none · small", "cfg@w=7.5 · small (not converged)"]
    assert acc["data"][0]["x"] == [15, 30, 45, 60] and acc["data"][1]["y"][-1] == pytest.approx(0.85)
    assert [t["line"]["dash"] for t in acc["data"]] == ["solid", "dash"]
