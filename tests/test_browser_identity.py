"""Two people and a teacher on one shared server, in real headless Chromium (issue 28).

A server started as a class would (IMBALANCE_LAB_SHARED=1, a tokens file, data roots). Alice
signs in and starts a CFG training; Bob, in another browser, signs in and neither sees it nor can
cancel it; the teacher sees it without a Cancel button; Alice, after a reload (the signed cookie
keeps her signed in, no token typed), still sees her Cancel button and cancels it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, _free_port, _unavailable, _wait_healthy

TOKENS = {"alice": "alice-token-0123", "bob": "bob-token-456789", "teach": "teacher-token-xyz"}


@pytest.fixture()
def shared_server(tmp_path):
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found (Debian's chromium package)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright python package is not installed (pip install -r requirements-test.txt)")
    users = tmp_path / "users.toml"
    users.write_text("".join(f'[{n}]\ntoken = "{t}"\n' + ("teacher = true\n" if n == "teach" else "") for n, t in TOKENS.items()))
    (tmp_path / "data").mkdir()
    port = _free_port()
    env = {**os.environ, "IMBALANCE_LAB_RUNS": str(tmp_path / "runs"), "IMBALANCE_LAB_CACHE": str(tmp_path / "cache"),
           "IMBALANCE_LAB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "IMBALANCE_LAB_SHARED": "1", "IMBALANCE_LAB_USERS": str(users),
           "IMBALANCE_LAB_DATA_ROOTS": str(tmp_path / "data")}
    log = open(tmp_path / "streamlit.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
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
        log.close()


def _sign_in(browser, url: str, who: str):
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(url + "/train")
    page.get_by_label("Your personal access token", exact=True).and_(page.get_by_test_id("stTextInputField")).fill(TOKENS[who])
    page.get_by_role("button", name="Enter").click()
    expect(page.locator('[data-testid="stSidebar"]').get_by_text(f"Signed in as {who}")).to_be_visible()
    # the page sets the signed cookie with a script once signed in: wait until the browser holds it
    deadline = time.time() + 60
    while not any(c["name"] == "imbalance_lab_id" and c["value"].startswith(f"{who}.") for c in ctx.cookies()):
        assert time.time() < deadline, f"no identity cookie for {who}: {ctx.cookies()}"
        page.wait_for_timeout(200)
    return ctx, page


@pytest.mark.timeout(900)
def test_two_people_and_a_teacher_on_one_shared_server(shared_server):
    from playwright.sync_api import expect, sync_playwright

    url, runs = shared_server
    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        a_ctx, alice = _sign_in(browser, url, "alice")
        alice.goto(url + "/train")
        expect(alice.get_by_role("heading", name="Train", exact=True)).to_be_visible()
        alice.get_by_role("spinbutton", name="Training steps", exact=True).fill("100000")
        alice.get_by_role("button", name="Start CFG training").click()
        expect(alice.get_by_text(re.compile(r"Started cfg job"))).to_be_visible()
        (run_id,) = [d.name for d in runs.iterdir() if d.is_dir()]

        _, bob = _sign_in(browser, url, "bob")
        bob.goto(url + "/train")
        expect(bob.get_by_role("heading", name="Train", exact=True)).to_be_visible()
        expect(bob.get_by_text("No training runs yet")).to_be_visible()
        assert bob.get_by_text(run_id).count() == 0 and bob.get_by_role("button", name="Cancel").count() == 0
        bob.goto(url + f"/study?study={run_id}")
        expect(bob.get_by_role("heading", name="Study", exact=True)).to_be_visible()
        assert bob.get_by_text(run_id).count() == 0

        _, teach = _sign_in(browser, url, "teach")
        teach.goto(url + "/train")
        expect(teach.get_by_text(run_id).first).to_be_visible()
        expect(teach.get_by_text("only its owner can cancel").first).to_be_visible()
        assert teach.get_by_role("button", name="Cancel").count() == 0

        # a new tab of Alice's browser: the cookie signs her in without the token
        again = a_ctx.new_page()
        again.set_default_timeout(60_000)
        again.goto(url + "/train")
        expect(again.locator('[data-testid="stSidebar"]').get_by_text("Signed in as alice")).to_be_visible()
        again.get_by_role("button", name="Cancel").first.click()
        progress = again.locator('[data-testid="stProgress"]', has_text=run_id)
        expect(progress.first).to_contain_text("cancelled", timeout=300_000)
        assert again.locator('[data-testid="stException"]').count() == 0
        browser.close()
