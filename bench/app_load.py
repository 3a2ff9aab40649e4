"""The server with a class of sessions open (issue 19 §5): 1, 4 and 8 browser sessions while
one CPU training runs in the server.

    flock /tmp/lab-heavy.lock .venv/bin/python bench/app_load.py [--levels 1,4,8] [--steps 200]

Writes bench/results/app_load.json through bench/record.py (prose: bench/templates/app_load.md).

One ``streamlit run app.py`` server (loopback, empty runs folder, digits) and one headless
Chromium (Debian's, through Playwright). For each level n the n sessions are pages of one
browser context, started one after another; each opens the Dataset page, visits every page
through the sidebar and stays on the Train page. Then the first session starts one CFG
training from the Train page's form (tiny preset, batch 64, ``--steps`` steps, no previews)
and all n stay open until it ends; then they are closed. Recorded:

* per page, the time from the navigation to the page's title on screen (first render) and to
  the end of its script run (Streamlit's running indicator gone), p50/p95 over the sessions;
* the server's RSS (sampled every 0.5 s; peak per level), and its growth over the server with
  no session open after one training (both have torch and the trainer loaded);
* the training's speed (median images/s of its metrics rows, the first row left out: start-up)
  against the same training with no session open (the tab that started it closed at once), and
  against the same training from the CLI (``python -m core train-cfg``), run first;
* CPU used during the training window, in cores: the server's process (the training runs in it)
  apart from the browser's processes (Chromium and Playwright's driver).

Targets at 8 sessions (issue 19): p95 first render ≤ 5 s, training ≥ 70 % of its no-session
speed, RSS growth ≤ 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = ["Dataset", "Train", "Generate", "Guidance explorer", "Results"]  # sidebar titles = page titles
TARGETS = {"p95_first_render_s": 5.0, "training_vs_no_session": 0.70, "rss_growth_mb": 500.0}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _images_per_s(run: Path) -> float | None:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    ips = [r["images_per_s"] for r in rows if "images_per_s" in r][1:]  # the first window holds the start-up
    return statistics.median(ips) if ips else None


def _pct(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(xs, q)) if xs else float("nan")


class Sampler:
    """Peak RSS of the server, sampled every 0.5 s in a thread."""

    def __init__(self, pid: int):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def rss_mb(self) -> float:
        return self.proc.memory_info().rss / 2**20

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.peak = max(self.peak, self.rss_mb())
            except Exception:  # the server ended
                return

    def reset(self) -> None:
        self.peak = self.rss_mb()

    def stop(self) -> None:
        self._stop.set()


def _cpu_seconds(pids: set[int]) -> dict[int, float]:
    import psutil

    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system  # every thread of the process
        except psutil.Error:
            pass
    return out


def _browser_pids(server_pid: int) -> set[int]:
    """Every process this script started except the server (and anything under it): Playwright's driver and Chromium."""
    import psutil

    me = psutil.Process()
    server = {server_pid} | {c.pid for c in psutil.Process(server_pid).children(recursive=True)}
    return {c.pid for c in me.children(recursive=True)} - server


def cli_training(steps: int, env: dict, tmp: Path) -> dict:
    out = tmp / "cli-run"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", "train-cfg", "--dataset", "digits", "--profile", "paper", "--preset", "tiny",
                    "--steps", str(steps), "--batch-size", "64", "--preview-every", "0", "--data-seed", "0", "--out", str(out), "--quiet"],
                   cwd=ROOT, env=env, check=True, timeout=900)
    return {"images_per_s": _images_per_s(out), "wall_s": time.perf_counter() - t0}


def visit(page, url: str, expect) -> dict[str, dict]:
    """Open the app in this page (a new session) and visit every page through the sidebar; end on Train."""
    times = {}
    nav = page.locator('[data-testid="stSidebarNav"]')
    running = page.locator('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]')
    for title in [*PAGES, "Train"]:
        t0 = time.perf_counter()
        if title == "Dataset":
            page.goto(url)
        else:
            nav.get_by_text(title, exact=True).click()
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        first = time.perf_counter() - t0
        expect(running).to_have_count(0)
        done = time.perf_counter() - t0
        assert page.locator('[data-testid="stException"]').count() == 0, f"exception box on {title}"
        if title not in times:  # the final return to Train is not a first visit
            times[title] = {"first_render_s": first, "script_done_s": done}
    return times


def start_training(page, expect, steps: int, seed: int, runs: Path) -> Path:
    before = {d.name for d in runs.iterdir()} if runs.exists() else set()
    page.get_by_role("spinbutton", name="Training steps", exact=True).fill(str(steps))
    page.get_by_role("spinbutton", name="Batch size", exact=True).first.fill("64")
    page.get_by_role("spinbutton", name="Preview every (steps; 0 = at the end)", exact=True).fill("0")
    page.get_by_role("spinbutton", name="Seed", exact=True).first.fill(str(seed))  # a new config each time (no duplicate prompt)
    page.get_by_role("button", name="Start CFG training").click()
    expect(page.get_by_text(re.compile(r"Started cfg job"))).to_be_visible()
    new = [d for d in runs.iterdir() if d.is_dir() and d.name not in before]
    assert len(new) == 1, new
    return new[0]


def wait_done(run: Path, timeout: float = 900) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = (json.loads((run / "status.json").read_text()) or {}).get("state")
        if state not in ("queued", "running"):
            return state
        time.sleep(0.5)
    raise TimeoutError(f"{run.name} did not end within {timeout} s")


def measure_training(run: Path, server_pid: int, sampler: Sampler) -> dict:
    bpids = _browser_pids(server_pid)
    s0, b0, t0 = _cpu_seconds({server_pid}), _cpu_seconds(bpids), time.perf_counter()
    sampler.reset()
    state = wait_done(run)
    s1, b1, wall = _cpu_seconds({server_pid}), _cpu_seconds(bpids), time.perf_counter() - t0
    server_cpu = sum(s1[p] - s0[p] for p in s1 if p in s0)
    browser_cpu = sum(b1[p] - b0[p] for p in b1 if p in b0)
    return {"state": state, "images_per_s": _images_per_s(run), "window_s": wall, "server_cores": server_cpu / wall,
            "browser_cores": browser_cpu / wall, "browser_processes": len(bpids), "peak_rss_mb": sampler.peak,
            "rss_after_mb": sampler.rss_mb()}


def run(levels: list[int], steps: int) -> dict:
    from playwright.sync_api import expect, sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    expect.set_options(timeout=180_000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    runs = tmp / "runs"
    env = {**os.environ, "IMBALANCE_LAB_RUNS": str(runs), "IMBALANCE_LAB_CACHE": str(tmp / "cache"), "IMBALANCE_LAB_OFFLINE": "1",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    out: dict = {"steps": steps, "batch_size": 64, "levels": {}, "targets": TARGETS}
    print("CLI training ...", flush=True)
    out["cli"] = cli_training(steps, env, tmp)
    print("cli:", out["cli"], flush=True)

    port = _port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    from tests.test_browser import _wait_healthy

    sampler = None
    try:
        _wait_healthy(url, proc, timeout=120)
        sampler = Sampler(proc.pid)
        out["rss_started_mb"] = sampler.rss_mb()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})

            def new_page():
                pg = ctx.new_page()
                pg.set_default_timeout(180_000)
                return pg

            # no session: the tab that starts the training is closed at once
            pg = new_page()
            pg.goto(url + "/train")
            expect(pg.get_by_role("heading", name="Train", exact=True)).to_be_visible()
            run_dir = start_training(pg, expect, steps, seed=1, runs=runs)
            pg.close()
            out["no_session"] = measure_training(run_dir, proc.pid, sampler)
            time.sleep(3)
            out["rss_no_session_mb"] = sampler.rss_mb()
            print("no session:", out["no_session"], flush=True)

            for i, n in enumerate(levels):
                pages, visits = [], []
                for _ in range(n):  # started one after another
                    pg = new_page()
                    visits.append(visit(pg, url, expect))
                    pages.append(pg)
                rss_open = sampler.rss_mb()
                run_dir = start_training(pages[0], expect, steps, seed=10 + i, runs=runs)
                lvl = measure_training(run_dir, proc.pid, sampler)
                lvl["rss_sessions_open_mb"] = rss_open
                lvl["pages"] = {t: {"first_render_p50_s": _pct([v[t]["first_render_s"] for v in visits], 50),
                                    "first_render_p95_s": _pct([v[t]["first_render_s"] for v in visits], 95),
                                    "script_done_p50_s": _pct([v[t]["script_done_s"] for v in visits], 50),
                                    "script_done_p95_s": _pct([v[t]["script_done_s"] for v in visits], 95)} for t in PAGES}
                lvl["visits"] = visits
                lvl["p95_first_render_s"] = max(v["first_render_p95_s"] for v in lvl["pages"].values())
                ns, cli = out["no_session"]["images_per_s"], out["cli"]["images_per_s"]
                lvl["vs_no_session"] = lvl["images_per_s"] / ns if ns and lvl["images_per_s"] else None
                lvl["vs_cli"] = lvl["images_per_s"] / cli if cli and lvl["images_per_s"] else None
                lvl["rss_growth_mb"] = lvl["peak_rss_mb"] - out["rss_no_session_mb"]
                for pg in pages:
                    pg.close()
                time.sleep(2)
                lvl["rss_closed_mb"] = sampler.rss_mb()
                out["levels"][str(n)] = lvl
                print(f"{n} sessions:", {k: v for k, v in lvl.items() if k not in ("visits", "pages")}, flush=True)
            browser.close()
    finally:
        if sampler:
            sampler.stop()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return out


def markdown(r: dict) -> str:
    f = lambda v, d=2: "—" if v is None or v != v else f"{v:.{d}f}"  # noqa: E731
    lines = [f"CLI: **{f(r['cli']['images_per_s'], 1)} images/s**; in the server with no session open: "
             f"**{f(r['no_session']['images_per_s'], 1)} images/s** (server {f(r['no_session']['server_cores'])} cores). "
             f"Server RSS: {f(r['rss_started_mb'], 0)} MB started, {f(r['rss_no_session_mb'], 0)} MB after that training.", "",
             "| sessions | p95 first render, worst page (s) | training images/s | vs no session | vs CLI | server cores | browser cores | "
             "peak RSS (MB) | RSS growth (MB) |", "|---|---|---|---|---|---|---|---|---|"]
    for n, lv in r["levels"].items():
        lines.append(f"| {n} | {f(lv['p95_first_render_s'])} | {f(lv['images_per_s'], 1)} | {f(100 * lv['vs_no_session'], 0)} % | "
                     f"{f(100 * lv['vs_cli'], 0)} % | {f(lv['server_cores'])} | {f(lv['browser_cores'])} | {f(lv['peak_rss_mb'], 0)} | "
                     f"{f(lv['rss_growth_mb'], 0)} |")
    lines += ["", "| sessions | page | first render p50 / p95 (s) | script done p50 / p95 (s) |", "|---|---|---|---|"]
    for n, lv in r["levels"].items():
        for t, v in lv["pages"].items():
            lines.append(f"| {n} | {t} | {f(v['first_render_p50_s'])} / {f(v['first_render_p95_s'])} | "
                         f"{f(v['script_done_p50_s'])} / {f(v['script_done_p95_s'])} |")
    last = r["levels"].get("8")
    if last:
        t = r["targets"]
        checks = [("p95 first render ≤ 5 s", last["p95_first_render_s"] <= t["p95_first_render_s"], f"{f(last['p95_first_render_s'])} s"),
                  ("training ≥ 70 % of no-session speed", (last["vs_no_session"] or 0) >= t["training_vs_no_session"],
                   f"{f(100 * (last['vs_no_session'] or 0), 0)} %"),
                  ("RSS growth ≤ 500 MB", last["rss_growth_mb"] <= t["rss_growth_mb"], f"{f(last['rss_growth_mb'], 0)} MB")]
        lines += ["", "Targets at 8 sessions: " + "; ".join(f"{name}: **{val}**, {'met' if ok else 'MISSED'}" for name, ok, val in checks) + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="1,4,8", help="session counts, comma-separated")
    ap.add_argument("--steps", type=int, default=200, help="CFG training steps (tiny preset, batch 64)")
    ap.add_argument("--no-record", action="store_true", help="print only (a smoke run); do not write bench/results/app_load.json")
    a = ap.parse_args()
    t0 = time.time()
    r = run([int(x) for x in a.levels.split(",")], a.steps)
    r["total_s"] = time.time() - t0
    md = markdown(r)
    print(md)
    if not a.no_record:
        from bench.record import write_result

        write_result("app_load", r, markdown=md)


if __name__ == "__main__":
    main()
