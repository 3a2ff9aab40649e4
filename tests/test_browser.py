"""End to end in real headless Chromium: `streamlit run app.py`, a tiny CFG training on digits.

The test starts the server on a free localhost port with its own runs folder, launches
the training from the Train page, closes that tab mid-job, opens a fresh tab (the job
must have carried on and be listed there), waits for "done", and checks that a preview
image and a chart are on the page. Screenshots go to test-output/ (git-ignored).

Without Debian's /usr/bin/chromium (or the playwright package) it skips, except when
the environment variable CI is set: CI must run it, so there it fails instead.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
OUT = ROOT / "test-output"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
STEPS = 8  # CFG optimizer steps: enough to see progress, a loss curve and a preview


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser test must run: install Debian's chromium, see .ci/run)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout} s")


@pytest.fixture()
def server(tmp_path):
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found (Debian's chromium package)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright python package is not installed (pip install -r requirements-test.txt)")
    port = _free_port()
    # its own cache folder too: the saved workspace (.cache/workspace.json) must not leak between tests
    env = {**os.environ, "IMBALANCE_LAB_RUNS": str(tmp_path / "runs"), "IMBALANCE_LAB_CACHE": str(tmp_path / "cache"),
           "IMBALANCE_LAB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "streamlit.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, tmp_path / "runs"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.seek(0)
        text = log.read()
        log.close()
        if "Traceback" in text:
            print(text[-4000:])


@pytest.mark.timeout(900)
def test_tiny_cfg_training_in_chromium(server):
    from playwright.sync_api import expect, sync_playwright

    url, runs = server
    OUT.mkdir(exist_ok=True)
    expect.set_options(timeout=60_000)  # expect() waits 5 s by default: too short for a first page run on a loaded 2-core machine
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.set_default_timeout(60_000)

        # A deep link as the server's very first request must still go through app.py
        # (navigation + the sidebar's job list), not run the page on its own.
        page.goto(url + "/train")
        expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible()
        expect(page.locator('[data-testid="stSidebar"]').get_by_text("Jobs", exact=True)).to_be_visible()
        expect(page.locator('[data-testid="stSidebarNav"]').get_by_text("Guidance explorer")).to_be_visible()
        page.get_by_role("spinbutton", name="Training steps", exact=True).fill(str(STEPS))
        page.get_by_role("spinbutton", name="Batch size", exact=True).first.fill("32")
        page.get_by_role("spinbutton", name="Preview every (steps; 0 = at the end)", exact=True).fill("4")
        page.get_by_role("spinbutton", name="Preview sampling steps", exact=True).fill("4")
        page.get_by_role("button", name="Start CFG training").click()
        expect(page.get_by_text(re.compile(r"Started cfg job"))).to_be_visible()
        run_dirs = [d for d in runs.iterdir() if d.is_dir()]
        assert len(run_dirs) == 1

        # Close the tab mid-job: the job runs in the server, so it must carry on.
        page.close()
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        page.goto(url + "/train")
        progress = page.locator('[data-testid="stProgress"]', has_text=run_dirs[0].name)
        expect(progress.first).to_be_visible()
        expect(progress.first).to_contain_text(re.compile(rf"done · step {STEPS}/{STEPS}"), timeout=600_000)

        expect(page.locator('[data-testid="stImage"] img').first).to_be_visible()
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(OUT / "browser-train-done.png"), full_page=True)

        # The Dataset page: embedded digits by default, counts chart and sample grids.
        page.goto(url)
        expect(page.get_by_role("heading", name="Dataset")).to_be_visible()
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
        # the sample grid renders after the chart: wait for the 10th image rather than count at once
        expect(page.locator('[data-testid="stImage"] img').nth(9)).to_be_visible()
        page.screenshot(path=str(OUT / "browser-dataset.png"))
        browser.close()

    assert (run_dirs[0] / "checkpoints" / "latest").is_dir()
    assert any((run_dirs[0] / "images").glob("preview*.png"))
