"""App and job-manager overheads: page render times (AppTest) and job bookkeeping costs.

    .venv/bin/python bench/app_jobs.py          (prints a markdown section)

Measures, on the embedded digits set with a temp runs folder:
* each page's script run time through AppTest, cold (first run in the process) and warm;
* JobManager submit -> running latency and the cost of one progress callback
  (the status.json write is throttled to one per second, so most calls are in-memory).
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


def main() -> None:
    pages = page_times()
    jobs = job_costs()
    print(f"## App pages and job manager\n\nCommand: `flock /tmp/lab-cpu.lock .venv/bin/python bench/app_jobs.py` "
          f"({time.strftime('%Y-%m-%d')}; machine: 2-core CPU shared with other work, no GPU; streamlit AppTest, digits dataset, empty runs folder).\n")
    print("| page | first run (s) | warm rerun, median of 5 (s) |\n|---|---|---|")
    for name, cold, warm in pages:
        print(f"| {name} | {cold:.2f} | {'—' if warm != warm else f'{warm:.3f}'} |")
    print(f"\nJobManager (one CPU worker, instant fake runner, {jobs['jobs']} jobs): submit → running latency "
          f"**{jobs['submit_to_running_ms']:.1f} ms** (median; includes creating the run folder and its atomic config/status writes); "
          f"one progress callback **{jobs['progress_call_us']:.1f} µs** (median over {jobs['calls']:,} calls; status.json rewritten at most once a second).")


if __name__ == "__main__":
    main()
