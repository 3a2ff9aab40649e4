"""App and job-manager overheads: page render times, job bookkeeping, the interactive lane,
and what an open page costs a training.

    flock /tmp/bench.lock .venv/bin/python bench/app_jobs.py [--quick]

Writes bench/results/app.json through bench/record.py (prose: bench/templates/app.md).

Measures, on the embedded digits set with a temp runs folder:
* each page's script run time through AppTest, cold (first run in the process) and warm;
* JobManager submit -> running latency and the cost of one progress callback
  (the status.json write is throttled to one per second, so most calls are in-memory);
* the interactive lane: while a CFG model trains on the CPU, the time from submitting a
  Mixup preview (3 classes x 10 images) and a CFG preview (8 images, 25 DPM-Solver steps)
  to their results (targets: < 5 s and < 30 s);
* page cost: CFG training images/s (median of its metrics rows) with the Train page open in
  headless Chromium vs with the tab closed, in a real ``streamlit run app.py`` server
  (target: open >= 90 % of closed); needs Debian's chromium and playwright.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("IMBALANCE_LAB_OFFLINE", "1")
os.environ["IMBALANCE_LAB_RUNS"] = tempfile.mkdtemp(prefix="bench-app-runs-")

PAGES = ["app_pages/dataset.py", "app_pages/train.py", "app_pages/generate.py", "app_pages/guidance.py", "app_pages/results.py"]


def page_times(repeats: int = 5) -> list[tuple[str, float, float]]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    t = time.perf_counter()
    at.run()
    first = time.perf_counter() - t
    out = [("app start (Dataset page, first run in the process)", first, float("nan"))]
    for page in PAGES:
        at.switch_page(page)
        t = time.perf_counter()
        at.run()
        cold = time.perf_counter() - t
        assert not at.exception, at.exception
        warm = []
        for _ in range(repeats):
            t = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - t)
        out.append((page, cold, statistics.median(warm)))
    return out


def job_costs(n_jobs: int = 20, n_progress: int = 20000) -> dict:
    from core.jobs import JobManager

    lat, per_call = [], []

    def runner(ctx):
        lat.append(time.perf_counter() - ctx.config["t"])
        t = time.perf_counter()
        for i in range(n_progress):
            ctx.progress(i + 1, n_progress)
        per_call.append((time.perf_counter() - t) / n_progress)

    m = JobManager(root=tempfile.mkdtemp(), devices=["cpu"], runners={"bench": runner})
    m.wait(m.submit("bench", {"t": time.perf_counter()}).id, 60)  # warm-up (imports, first folder)
    lat.clear(), per_call.clear()
    # the runner reads the submit time back from the run's config.json
    for _ in range(n_jobs):
        t0 = time.perf_counter()
        job = m.submit("bench", {"t": t0})
        m.wait(job.id, 60)
    m.shutdown()
    return {"submit_to_running_ms": statistics.median(lat) * 1e3, "progress_call_us": statistics.median(per_call) * 1e6, "jobs": n_jobs, "calls": n_progress}


def _wait_step(m, job_id: str, step: int, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = m.get(job_id)
        if j.state == "running" and j.step >= step:
            return
        if not j.active:
            raise RuntimeError(f"training ended early: {j.summary()}")
        time.sleep(0.05)
    raise TimeoutError(f"training did not reach step {step}")


def interactive_lane() -> dict:
    """Preview latencies while a CFG model trains on the same CPU (real runners, digits)."""
    import core.jobs.runners  # noqa: F401  registers the real runners and the interactive lane's limits
    from core.data.loading import DataConfig
    from core.jobs import JobManager
    from core.train.cfg_unet import CFGTrainConfig

    data = DataConfig(dataset="digits", profile="paper").to_dict()
    m = JobManager(root=tempfile.mkdtemp(prefix="bench-lane-"), devices=["cpu"])
    try:
        # a small finished model to sample from
        model = m.submit("cfg", CFGTrainConfig.from_dict({"data": data, "steps": 30, "batch_size": 32, "preview_every": 0,
                                                          "preview_steps": 2, "checkpoint_every": 0}).to_dict(), name="model")
        m.wait(model.id, 600)
        # the long training the previews must not wait behind
        long = m.submit("cfg", CFGTrainConfig.from_dict({"data": data, "steps": 100_000, "batch_size": 64, "preview_every": 0,
                                                         "checkpoint_every": 0, "log_every": 10}).to_dict(), name="long")
        _wait_step(m, long.id, 20)
        out = {"lane_of_training": getattr(m.get(long.id), "lane", "single queue")}
        cases = {
            "mixup_preview_s": {"data": data, "method": "mixup", "params": {"lam": 0.6}, "classes": [0, 1, 2], "count": 10, "seed": 0},
            "cfg_preview_8_s": {"data": data, "method": "cfg", "params": {"run_dir": str(model.run.path), "w": 2.0, "sampler": "dpm", "steps": 25},
                                "classes": [0], "count": 8, "seed": 0},
        }
        for key, cfg in cases.items():
            t0 = time.perf_counter()
            j = m.submit("generate", cfg, name=key)
            m.wait(j.id, 900)
            out[key] = time.perf_counter() - t0
            out[key.replace("_s", "_state")] = m.get(j.id).state
            out[key.replace("_s", "_lane")] = getattr(m.get(j.id), "lane", "single queue")
        out["training_step_when_done"] = m.get(long.id).step
        out["training_still_running"] = m.get(long.id).state == "running"
        m.cancel(long.id)
        m.wait(long.id, 120)
        return out
    finally:
        m.shutdown()


def page_cost(steps: int = 160) -> dict:
    """CFG training images/s in a real server, with the Train page open vs its tab closed."""
    import json
    import re
    import socket
    import subprocess
    import urllib.request

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        return {"skipped": f"{CHROMIUM} not found"}
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)  # a loaded 2-core machine: the first page load can take a while
    tmp = Path(tempfile.mkdtemp(prefix="bench-page-"))
    with socket.socket() as s_:
        s_.bind(("127.0.0.1", 0))
        port = s_.getsockname()[1]
    env = {**os.environ, "IMBALANCE_LAB_RUNS": str(tmp / "runs"), "IMBALANCE_LAB_CACHE": str(tmp / "cache"), "IMBALANCE_LAB_OFFLINE": "1"}
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    out: dict = {"steps": steps, "batch_size": 64}
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            for mode in ("closed", "open", "closed2", "open2"):
                page = ctx.new_page()
                page.set_default_timeout(120_000)
                page.goto(url + "/train")
                expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible()
                page.get_by_role("spinbutton", name="Training steps", exact=True).fill(str(steps))
                page.get_by_role("spinbutton", name="Preview every (steps; 0 = at the end)", exact=True).fill("0")
                page.get_by_role("spinbutton", name="Seed", exact=True).first.fill(str(len(out)))  # a new config each time (no duplicate prompt)
                page.get_by_role("button", name="Start CFG training").click()
                expect(page.get_by_text(re.compile(r"Started cfg job"))).to_be_visible()
                run = sorted((tmp / "runs").iterdir())[-1]
                if mode.startswith("closed"):
                    page.close()
                deadline = time.time() + 900
                while time.time() < deadline and json.loads((run / "status.json").read_text()).get("state") in ("queued", "running"):
                    time.sleep(1)
                if not mode.startswith("closed"):
                    page.close()
                rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
                ips = [r["images_per_s"] for r in rows if "images_per_s" in r][1:]  # the first window holds the start-up
                out[f"images_per_s_{mode}"] = statistics.median(ips) if ips else None
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    closed = [out[k] for k in ("images_per_s_closed", "images_per_s_closed2") if out.get(k)]
    opened = [out[k] for k in ("images_per_s_open", "images_per_s_open2") if out.get(k)]
    if closed and opened:
        out["open_over_closed"] = statistics.mean(opened) / statistics.mean(closed)
    return out


def main() -> None:
    quick = "--quick" in sys.argv
    pages = page_times()
    jobs = job_costs()
    lane = interactive_lane()
    print("interactive lane:", lane, flush=True)
    try:
        cost = page_cost(steps=80 if quick else 160)
    except Exception as exc:  # record what was measured; say why the rest is missing
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = " / ".join([lines[0], *[ln for ln in lines[1:] if ln.startswith("Error:")]][:2]) if lines else ""
        cost = {"skipped": f"page-cost run failed: {type(exc).__name__}: {why}"}
    lines = ["| page | first run (s) | warm rerun, median of 5 (s) |", "|---|---|---|"]
    for name, cold, warm in pages:
        lines.append(f"| {name} | {cold:.2f} | {'—' if warm != warm else f'{warm:.3f}'} |")
    lines.append("")
    lines.append(f"JobManager (one CPU worker, instant fake runner, {jobs['jobs']} jobs): submit → running latency "
                 f"**{jobs['submit_to_running_ms']:.1f} ms** (median; includes creating the run folder and its atomic config/status writes); "
                 f"one progress callback **{jobs['progress_call_us']:.1f} µs** (median over {jobs['calls']:,} calls).")
    lines.append("")
    lines.append("| while a CFG model trains on the CPU | submit → result | target | lane |\n|---|---|---|---|")
    lines.append(f"| Mixup preview, 3 classes × 10 images | **{lane['mixup_preview_s']:.2f} s** | < 5 s | {lane['mixup_preview_lane']} |")
    lines.append(f"| CFG preview, 8 images, 25 DPM-Solver steps | **{lane['cfg_preview_8_s']:.2f} s** | < 30 s | {lane['cfg_preview_8_lane']} |")
    lines.append(f"\nThe training was still running afterwards: {lane['training_still_running']} (step {lane['training_step_when_done']}).")
    lines.append("")
    if "skipped" in cost:
        lines.append(f"Page cost: skipped ({cost['skipped']}).")
    else:
        lines.append(f"| CFG training (tiny preset, batch 64, {cost['steps']} steps) | images/s (median of the metrics rows) |\n|---|---|")
        for k in ("closed", "open", "closed2", "open2"):
            v = cost.get(f"images_per_s_{k}")
            lines.append(f"| Train page {'open' if k.startswith('open') else 'tab closed'} (run {2 if k.endswith('2') else 1}) | {v:.1f} |" if v else f"| {k} | — |")
        if cost.get("open_over_closed"):
            lines.append(f"\nOpen page / closed tab: **{cost['open_over_closed'] * 100:.0f} %** (target ≥ 90 %).")
    md = "\n".join(lines)
    print(md)
    from bench.record import write_result

    write_result("app", {"pages": [{"page": n, "first_s": c, "warm_s": (None if w != w else w)} for n, c, w in pages], "jobs": jobs,
                         "lane": lane, "page_cost": cost}, markdown=md)


if __name__ == "__main__":
    main()
