"""The denoising view in real headless Chromium (< 60 s on a quiet machine): a real tiny CFG checkpoint, the
trajectory job started from the Guidance page's tab, then the slider moved with the keyboard.
Uses tests/test_browser.py's server fixture (skips without Debian's chromium, except under CI)."""

from __future__ import annotations

import re
import time

import pytest

from tests.helpers import cfg_run, tiny_cfg_checkpoint
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, OUT, server  # noqa: F401  (server is a fixture)


@pytest.mark.timeout(600)
def test_denoise_view_in_chromium(server):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    url, runs = server
    t0 = time.time()
    tiny_cfg_checkpoint(cfg_run(runs, "tiny", "done", 40, 40, checkpoint=False))
    OUT.mkdir(exist_ok=True)
    expect.set_options(timeout=120_000)  # a page render or a trajectory job on a loaded machine
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
        page.set_default_timeout(120_000)
        page.goto(url + "/guidance")
        expect(page.get_by_role("heading", name="Guidance explorer")).to_be_visible()
        page.get_by_role("tab", name="Denoising, step by step").click()
        tab = page  # the Sweep tab holds no images, charts or sliders here (no sweep was run), so page-wide counts are the tab's
        expect(tab.get_by_role("combobox", name="CFG model").last).to_be_visible()  # .last: the Sweep tab has a picker too
        tab.get_by_role("spinbutton", name="Sampling steps", exact=True).fill("5")
        tab.get_by_role("button", name="Compute the trajectory").click()
        expect(tab.get_by_text("step 5 of 5", exact=False)).to_be_visible()
        expect(tab.locator('[data-testid="stImage"] img')).to_have_count(15)  # 3 columns × (x_t, x̂₀, ε_c, ε_u, ε̃)
        expect(tab.locator('[data-testid="stPlotlyChart"]')).to_have_count(2)  # guidance norm + the Play animation (in an expander)
        tab.get_by_role("slider").focus()
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowLeft")
        expect(tab.get_by_text(re.compile(r"step 3 of 5 · t = \d+"))).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(OUT / "browser-denoise.png"), full_page=True)
        browser.close()
    assert len([d for d in runs.iterdir() if d.is_dir()]) == 2  # the model and one trajectory: scrubbing computed nothing
    print(f"denoise browser test: {time.time() - t0:.1f} s")  # < 60 s quiet; its waits are meant for a loaded machine
