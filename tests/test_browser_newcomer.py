"""End to end in headless Chromium: the newcomer's path through the whole lab.

Follow the first-visit strip (issue 20): its step 1 opens the Dataset page (pick a profile),
step 2 the Train page (train a tiny CFG model for a few steps), step 3 the Guidance explorer
(the new model is preselected); step 4 links to the Study page. Dismiss the strip: a reload
keeps it hidden (a cookie in this browser). Then preview the model at two guidance weights
(side by side), balance the data with it to a small target, train a classifier for a few
optimizer steps on that balanced set, open Results. Every step is tiny (8 CFG
steps, 10 sampler steps, fill to 20 images per class, one epoch), so it runs in a few
minutes on a CPU. Asserts: no exception box, no magic output, the Results rows expected.

Uses Debian's chromium through Playwright's ``executable_path`` (see tests/test_browser.py);
skips without it, except under CI, where it fails.
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, OUT, server  # noqa: F401  (the fixture)

STEPS = 8
TARGET = 20  # balance: fill each class up to this many images
CLS_STEPS = 10
STEPS_TEXT = ["1 · The data and its imbalance", "2 · Train a generator", "3 · Look at guidance", "4 · Run the quick study"]


def _no_trouble(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()
    # magic output renders source as code blocks / st.help boxes; the lab never shows either
    assert page.locator('[data-testid="stHelp"]').count() == 0
    assert page.get_by_text("DeltaGenerator").count() == 0


def _select(page, label: str, option_text: str) -> None:
    # Streamlit 1.67's selectbox is a react-aria combobox: its "Open" button shows a listbox of options
    box = page.locator('[data-testid="stSelectbox"]', has_text=label).first
    box.get_by_role("button", name="Open").click()
    page.get_by_role("option").filter(has_text=option_text).first.click()


def _fill(page, label, value) -> None:
    # not get_by_label: a field with help text also has a "Help for <label>" button the label matches
    labelled = page.get_by_label(label) if isinstance(label, re.Pattern) else page.get_by_label(label, exact=True)
    field = page.locator("input, textarea").and_(labelled).first
    field.fill(str(value))
    field.press("Tab")  # commit the value (Enter no longer submits forms)


def _chart_download(page, raw: bool = False):
    """Download the first chart through its toolbar's camera button: the image (PIL), or the raw bytes."""
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.hover()
    with page.expect_download() as dl:
        chart.locator('.modebar-btn[data-title^="Download plot"]').click()
    data = open(dl.value.path(), "rb").read()
    return data if raw else Image.open(io.BytesIO(data))


@pytest.mark.timeout(900)
def test_newcomer_path_in_chromium(server):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    url, runs = server
    OUT.mkdir(exist_ok=True)
    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
        page.set_default_timeout(60_000)

        # 0. The first-visit strip: four steps, each a link to its page.
        page.goto(url)
        strip = page.locator(".st-key-first_visit")
        expect(strip).to_contain_text("New here?")
        for label in STEPS_TEXT:
            expect(strip.get_by_text(label, exact=True)).to_be_visible()
        expect(strip.locator("a", has_text="4 · Run the quick study")).to_have_attribute("href", re.compile(r"(^|/)study$"))
        strip.get_by_text(STEPS_TEXT[0], exact=True).click()

        # 1. Dataset: pick the linear profile (ratio 10); the choice goes into the URL.
        expect(page.get_by_role("heading", name="Dataset")).to_be_visible()
        _select(page, "Imbalance profile", "linear:")
        expect(page).to_have_url(re.compile(r"profile=linear"))
        expect(page.locator('[data-testid="stSidebar"]').get_by_text(re.compile(r"profile linear, ratio 10"))).to_be_visible()
        _no_trouble(page)

        # 2. Train a tiny CFG model (the strip's step 2).
        strip.get_by_text(STEPS_TEXT[1], exact=True).click()
        expect(page.get_by_role("heading", name="Train")).to_be_visible()
        _fill(page, "Training steps", STEPS)
        page.get_by_role("spinbutton", name="Batch size", exact=True).first.fill("32")
        _fill(page, "Preview every (steps; 0 = at the end)", 0)
        _fill(page, "Preview sampling steps", 4)
        page.get_by_role("button", name="Start CFG training").click()
        expect(page.get_by_text(re.compile(r"Started cfg job"))).to_be_visible()
        cfg_run = next(d for d in runs.iterdir() if "-cfg-" in d.name)
        bar = page.locator('[data-testid="stProgress"]', has_text=cfg_run.name).first
        expect(bar).to_contain_text(re.compile(rf"done · step {STEPS}/{STEPS}"), timeout=300_000)
        _no_trouble(page)

        # 3. Guidance (the strip's step 3): the model just trained is preselected. Then dismiss the
        # strip: a reload (a new session) keeps it hidden, from this browser's cookie.
        strip.get_by_text(STEPS_TEXT[2], exact=True).click()
        expect(page.get_by_role("heading", name="Guidance explorer")).to_be_visible()
        expect(page.get_by_role("combobox", name="CFG model")).to_have_value(re.compile(re.escape(cfg_run.name)))
        strip.get_by_role("button", name=re.compile("Got it")).click()
        expect(strip).to_have_count(0)
        page.wait_for_function("document.cookie.includes('imbalance_lab_intro=dismissed')")
        page.reload()
        expect(page.get_by_role("heading", name="Guidance explorer")).to_be_visible()
        expect(page.locator('[data-testid="stSidebar"]').get_by_text(re.compile(r"profile linear, ratio 10"))).to_be_visible()
        expect(page.locator(".st-key-first_visit")).to_have_count(0)
        _no_trouble(page)

        # 4. Generate: previews at w = 0 and w = 2, side by side.
        page.locator('[data-testid="stSidebarNav"]').get_by_text("Generate", exact=True).click()
        expect(page.get_by_role("heading", name="Generate")).to_be_visible()
        # the model picker preselects the model just trained (its label is the combobox's value, not its text)
        expect(page.get_by_role("combobox", name="Generator")).to_have_value(re.compile(re.escape(cfg_run.name)))
        _fill(page, "Images per class", 3)
        _fill(page, "Sampling steps", 10)
        for w in (0, 2):
            _fill(page, "Guidance weight w (paper's; 0 = plain conditional)", w)
            page.get_by_role("button", name="Generate preview").click()
            expect(page.get_by_text(re.compile(rf"newest preview: cfg@w={w} · model"))).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Side by side: the last previews")).to_be_visible()
        expect(page.get_by_text(re.compile(r"^cfg@w=0 · model"))).to_be_visible()
        expect(page.get_by_text(re.compile(r"^cfg@w=2 · model"))).to_be_visible()
        _no_trouble(page)
        # the newest preview's grid downloads as PNG, 4x nearest-neighbour
        shown = page.locator('[data-testid="stImage"] img').first
        with page.expect_download() as dl:
            page.get_by_role("button", name=re.compile(r"Download PNG \(4×\)")).first.click()
        grid = Image.open(dl.value.path())
        assert grid.format == "PNG" and grid.width == 4 * shown.evaluate("i => i.naturalWidth")

        # 5. Balance with the CFG model (w = 2) to a small target.
        _fill(page, re.compile(r"^Balance: fill each class up to"), TARGET)
        page.get_by_role("button", name="Balance the dataset with this generator").click()
        expect(page.get_by_text("Balanced set saved.")).to_be_visible(timeout=240_000)
        _no_trouble(page)
        page.screenshot(path=str(OUT / "newcomer-generate.png"), full_page=True)

        # 6. Train a classifier on the balanced set, for a few optimizer steps (the default budget).
        page.locator('[data-testid="stSidebarNav"]').get_by_text("Train", exact=True).click()
        page.get_by_role("tab", name="Classifier").click()
        _select(page, "Training set", "balanced set")
        _fill(page, "Optimizer steps (budget: steps)", CLS_STEPS)
        page.get_by_role("button", name="Start classifier training").click()
        expect(page.get_by_text(re.compile(r"Started classifier job"))).to_be_visible()
        cls_run = next(d for d in runs.iterdir() if "-classifier-" in d.name)
        bar = page.locator('[data-testid="stProgress"]', has_text=cls_run.name).first
        expect(bar).to_contain_text("done", timeout=300_000)
        _no_trouble(page)

        # 7. Results: one row for the CFG-balanced classifier, with its steps; no exception, no magic.
        page.locator('[data-testid="stSidebarNav"]').get_by_text("Results", exact=True).click()
        expect(page.get_by_role("heading", name="Results")).to_be_visible()
        expect(page.get_by_text("Method comparison")).to_be_visible()
        expect(page.get_by_text(re.compile(r"^One row per setting"))).to_be_visible()  # the grouped table's caption
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
        _no_trouble(page)
        page.screenshot(path=str(OUT / "newcomer-results.png"), full_page=True)
        # the chart toolbar's camera: PNG 1600 px wide, or SVG after the sidebar's choice (plotly.js renders both)
        assert _chart_download(page).width == 1600
        page.locator('[data-testid="stSidebar"]').get_by_text("SVG (vector)").click()
        svg = _chart_download(page, raw=True)
        assert svg.lstrip().startswith(b"<svg")
        browser.close()

    import json

    from core.study.tables import classifier_results, group_runs

    res = json.loads((cls_run / "results.json").read_text())
    assert 0.0 <= res["accuracy"] <= 1.0 and res["steps"] == CLS_STEPS
    cd = classifier_results(runs)
    groups = group_runs(cd)
    assert list(groups["label"]) == ["cfg@w=2 · small"] and list(groups["n"]) == [1]

