"""The long input sweep (issue 19 §7, issue 28): URLs, form fields, study files and dataset zips.

    flock /tmp/lab-heavy.lock .venv/bin/python bench/input_sweep.py [--examples 150] [--no-record]

Two pytest subprocesses, each logging every input tried and going on past a failing one
(INPUT_SWEEP_COLLECT=1):

* tests/test_input_sweep.py (URL parameters, form fields) with INPUT_SWEEP_EXAMPLES random
  (not derandomized) examples per test;
* tests/test_upload_sweep.py with every hostile study file and zip of tests/hostile_inputs.py
  (INPUT_SWEEP_ALL=1), under ``ulimit -v``: the address space of a bare interpreter with the
  app's imports plus UPLOAD_LIMIT_GB, so an allocation past it fails instead of swapping.

Writes bench/results/input_sweep.json through bench/record.py (prose: bench/templates/input_sweep.md):
how many inputs were tried per kind, how many were refused, how many showed a problem (exception
box, hang, allocation past the budget, a refusal that was not, a file outside its folder, a file
left after a refusal), each distinct problem with one input that shows it, and the peak RSS.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
UPLOAD_LIMIT_GB = 4  # address space the upload sweep's process may add to a bare one with the app's imports (ulimit -v)
PROBE = "import torch, streamlit, PIL; from streamlit.testing.v1 import AppTest; import app_pages, core.jobs.runners; print(open('/proc/self/statm').read().split()[0])"


def _pytest(test_file: str, env: dict, ulimit_kb: int | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "2400", test_file]  # every case: past pytest.ini's 900 s
    if ulimit_kb:
        cmd = ["bash", "-c", f"ulimit -v {ulimit_kb} && exec \"$@\"", "bash", *cmd]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def baseline_kb() -> int:
    """The address space (KiB) of an interpreter that imported what the app and AppTest import."""
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) * resource.getpagesize() // 1024


def sweep(examples: int) -> dict:
    log = Path(tempfile.mkdtemp(prefix="input-sweep-")) / "inputs.jsonl"
    env = {**os.environ, "INPUT_SWEEP_EXAMPLES": str(examples), "INPUT_SWEEP_LOG": str(log), "INPUT_SWEEP_COLLECT": "1"}
    t0 = time.time()
    out = _pytest("tests/test_input_sweep.py", env)
    base = baseline_kb()
    limit_kb = base + UPLOAD_LIMIT_GB * 1024**2
    up = _pytest("tests/test_upload_sweep.py", {**env, "INPUT_SWEEP_ALL": "1"}, limit_kb)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.exists() else []
    problems: dict[str, dict] = {}
    for r in rows:
        for p in r["problems"]:
            # one row per kind of problem, not per value: "'x' is not in list", "The `value` 9 is greater ..."
            key = re.sub(r"'.*' is not in list", "'…' is not in list", p[:200])
            key = re.sub(r"-?\d[\d.e+-]*", "N", key)
            entry = problems.setdefault(key, {"count": 0, "example": r["inputs"], "kind": r["kind"]})
            entry["count"] += 1
    per_kind = collections.Counter(r["kind"] for r in rows)
    bad = collections.Counter(r["kind"] for r in rows if r["problems"])
    refused = collections.Counter(r["kind"] for r in rows if r.get("refused"))
    return {"examples_per_test": examples, "inputs_tried": len(rows), "by_kind": dict(per_kind), "failing_by_kind": dict(bad),
            "refused_by_kind": dict(refused), "failing_inputs": sum(bad.values()), "problems": problems, "seconds": time.time() - t0,
            "median_s_per_input": sorted(r["seconds"] for r in rows)[len(rows) // 2] if rows else None,
            "upload_ulimit_v_kb": limit_kb, "upload_baseline_kb": base, "peak_rss_mb": round(peak_mb),
            "pytest_exit": out.returncode, "pytest_tail": out.stdout[-1500:],
            "upload_pytest_exit": up.returncode, "upload_pytest_tail": up.stdout[-1500:] + up.stderr[-500:]}


def markdown(r: dict) -> str:
    k, ref = r["by_kind"], r.get("refused_by_kind", {})
    lines = [f"Inputs tried: **{r['inputs_tried']}** ({k.get('url', 0)} URLs, {k.get('form', 0)} form fillings, "
             f"{k.get('study', 0)} study files ({ref.get('study', 0)} refused), {k.get('archive', 0)} dataset zips ({ref.get('archive', 0)} refused); "
             f"{r['seconds'] / 60:.1f} min, median {r['median_s_per_input'] or 0:.1f} s per input). "
             f"Inputs with a problem (exception box, hang past 30 s, allocation past the budget, a hostile upload taken, a file "
             f"outside its folder or left after a refusal): **{r['failing_inputs']}**. The uploads ran under `ulimit -v "
             f"{r.get('upload_ulimit_v_kb', 0):,}` KiB (a bare interpreter with the app's imports, {r.get('upload_baseline_kb', 0) / 1024**2:.1f} GiB, "
             f"+ {UPLOAD_LIMIT_GB} GiB); pytest exits {r['pytest_exit']} and {r.get('upload_pytest_exit')}; peak RSS of a sweep process "
             f"{r.get('peak_rss_mb', 0):,} MB."]
    if r["problems"]:
        lines += ["", "| problem | inputs | one input that shows it |", "|---|---|---|"]
        for key, p in sorted(r["problems"].items(), key=lambda kv: -kv[1]["count"]):
            ex = json.dumps(p["example"], ensure_ascii=False, default=repr)
            ex = ex if len(ex) < 300 else ex[:300] + "…"
            lines.append(f"| {key.replace('|', '/')} | {p['count']} | `{ex.replace('|', '/').replace('`', chr(39))}` |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=150, help="random examples per test (two tests: URL parameters, form fields)")
    ap.add_argument("--no-record", action="store_true", help="print only; do not write bench/results/input_sweep.json")
    a = ap.parse_args()
    r = sweep(a.examples)
    md = markdown(r)
    print(md)
    if not a.no_record:
        from bench.record import write_result

        write_result("input_sweep", r, markdown=md)


if __name__ == "__main__":
    main()
