"""The long input sweep (issue 19 §7): tests/test_input_sweep.py with many random examples.

    flock /tmp/lab-heavy.lock .venv/bin/python bench/input_sweep.py [--examples 150] [--no-record]

Runs both sweeps (URL parameters, form fields) in a pytest subprocess with INPUT_SWEEP_EXAMPLES
random (not derandomized) examples per test, logging every input tried and going on past a
failing one (INPUT_SWEEP_COLLECT=1). Writes bench/results/input_sweep.json through
bench/record.py (prose: bench/templates/input_sweep.md): how many inputs were tried, how many
showed an exception box, hung or went past the memory budget, and each distinct problem with
one input that shows it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sweep(examples: int) -> dict:
    log = Path(tempfile.mkdtemp(prefix="input-sweep-")) / "inputs.jsonl"
    env = {**os.environ, "INPUT_SWEEP_EXAMPLES": str(examples), "INPUT_SWEEP_LOG": str(log), "INPUT_SWEEP_COLLECT": "1"}
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_input_sweep.py"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
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
    return {"examples_per_test": examples, "inputs_tried": len(rows), "by_kind": dict(per_kind), "failing_by_kind": dict(bad),
            "failing_inputs": sum(bad.values()), "problems": problems, "seconds": time.time() - t0,
            "median_s_per_input": sorted(r["seconds"] for r in rows)[len(rows) // 2] if rows else None,
            "pytest_exit": out.returncode, "pytest_tail": out.stdout[-1500:]}


def markdown(r: dict) -> str:
    lines = [f"Inputs tried: **{r['inputs_tried']}** ({r['by_kind'].get('url', 0)} URLs, {r['by_kind'].get('form', 0)} form fillings; "
             f"{r['seconds'] / 60:.1f} min, median {r['median_s_per_input'] or 0:.1f} s per input). "
             f"Inputs with a problem (exception box, hang past 30 s, allocation past the budget): **{r['failing_inputs']}**."]
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
