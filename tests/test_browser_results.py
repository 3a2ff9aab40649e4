"""The Results page in real headless Chromium (issue 17): a finished study's budget curves, its
generator gate marks and the MDE wording of an inconclusive verdict (< 60 s on a quiet machine; the
test checks what the page shows, with waits meant for a loaded machine, and prints its time).

The study is tests/test_study_report.py's hand-written fixture (make_study, gates=True) with a third
method added, so every figure is known: none (converged), oversample (converged; vs none inconclusive
with an MDE of 4.4 points) and cfg@w=7.5 (below the gate, ✗, and not converged: its curve is dashed).
Uses tests/test_browser.py's server fixture (skips without Debian's chromium, except under CI).
"""

from __future__ import annotations

import copy
import json
import time

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, OUT, server  # noqa: F401  (server is a fixture)
from tests.test_study_report import _write, make_study

CURVE_AXIS = "optimizer steps (log scale)"  # core.viz.figures.budget_curves' x-axis title
GATE = {"passed": False, "tail_consistency": 0.4, "precision": 0.7, "near_copy_rate": 0.05,
        "rule": "mean over seeds 0, 1: tail consistency ≥ 0.8", "thresholds": {"tail_consistency": 0.8, "precision": 0.5, "near_copy_rate": 0.2}}


def finished_study(runs):
    """make_study's study with oversample added: none converged, oversample converged and inconclusive vs
    none (MDE 0.0437), cfg@w=7.5 below the gate and not converged (its verdict: below gate)."""
    study = make_study(runs, gates=True)
    res = json.loads((study / "results.json").read_text())
    none, cfg = res["rows"]
    over = copy.deepcopy(none)
    over.update(method="oversample", converged=True, vs={"none": {"metric": "accuracy", "diff_mean": 0.01, "ci95": [-0.02, 0.04],
                                                                 "p": 0.4, "p_holm": 0.8, "mde": 0.0437, "verdict": "inconclusive"}})
    none["converged"] = True
    cfg.update(state="below_gate", converged=False, gate=GATE)
    cfg["vs"]["none"].update(p=0.2, p_holm=None, mde=None, verdict="below gate")
    res["rows"] = [none, over, cfg]
    _write(study / "results.json", res)
    return study


def grid_records(page, header: str) -> list[dict]:
    """The rows of the one st.dataframe whose columns include ``header``, read from the accessible table
    glide-data-grid keeps next to its canvas (a <table role="grid">: only the cells in view, hence the wide viewport)."""
    grids = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stDataFrame"] table[role="grid"]')].map(t =>
        [...t.querySelectorAll('tr')].map(tr => [...tr.children].map(c => c.textContent)))""")
    (rows,) = [g for g in grids if g and header in g[0]]
    return [dict(zip(rows[0], r)) for r in rows[1:]]


@pytest.mark.timeout(600)
def test_results_page_shows_curves_gates_and_mde_in_chromium(server):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    url, runs = server
    t0 = time.time()
    study = finished_study(runs)
    OUT.mkdir(exist_ok=True)
    expect.set_options(timeout=120_000)  # a page render on a loaded machine
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # 3600 px: the study rows' 22 columns all in view, so all of them are in the grid's accessible table
        page = browser.new_context(viewport={"width": 3600, "height": 1200}).new_page()
        page.set_default_timeout(120_000)
        page.goto(url + "/results?study=" + study.name)
        expect(page.get_by_role("heading", name="Studies: each method against its references")).to_be_visible()

        # (a) the two budget curves (accuracy, minority F1): one line per row, cfg's dashed and named "(not converged)"
        curves = page.locator(".js-plotly-plot").filter(has=page.locator(".xtitle", has_text=CURVE_AXIS))
        expect(curves).to_have_count(2)
        for i, ytitle in enumerate(("accuracy", "minority f1")):
            expect(curves.nth(i).locator(".ytitle")).to_have_text(ytitle)
            expect(curves.nth(i).locator(".legendtext")).to_have_text(["none · small", "oversample · small", "cfg@w=7.5 · small (not converged)"])
            dashes = curves.nth(i).locator(".scatterlayer .trace path.js-line").evaluate_all("ls => ls.map(l => l.style.strokeDasharray)")
            assert [d != "" for d in dashes] == [False, False, True], dashes

        # (b) the gate marks: ✗ on cfg@w=7.5 (below_gate, with the reason), nothing on the ungated methods
        cells = page.locator('[data-testid="stDataFrame"] table[role="grid"] td')
        expect(cells.filter(has_text="✗")).to_have_count(1)
        rows = {r["method"]: r for r in grid_records(page, "gate")}
        assert list(rows) == ["none", "oversample", "cfg@w=7.5"]
        assert [(r["state"], r["gate"], r["converged"]) for r in rows.values()] == [("ok", "", "true"), ("ok", "", "true"),
                                                                                     ("below_gate", "✗", "false")]
        assert rows["cfg@w=7.5"]["failed / unavailable / below gate because"] == "below gate: tail consistency 0.400 < 0.8"
        assert rows["cfg@w=7.5"]["gate: tail consistency"] == "0.4"

        # (c) the verdicts: oversample vs none inconclusive with its MDE (0.0437 → 4.4 points), cfg's no verdict
        expect(cells.filter(has_text="could not detect")).to_have_count(1)
        verdicts = {r["method"]: r["verdict"] for r in grid_records(page, "verdict")}
        assert verdicts == {"oversample": "inconclusive (could not detect < 4.4 pts)",
                            "cfg@w=7.5": "below gate: no verdict (the generator's fill failed its gate)"}
        expect(page.get_by_text("not that the methods are equal")).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(OUT / "browser-results-study.png"), full_page=True)
        browser.close()
    elapsed = time.time() - t0
    print(f"results browser test: {elapsed:.1f} s")
