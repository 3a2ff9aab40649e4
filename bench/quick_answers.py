"""Does the quick study answer? Its run from a fresh start, the criteria of issue 17 item 6, and the
same study at 4× the steps side by side.

    # the measurement (what a fresh clone runs; models/ and .cache/ empty, so the judge trains too)
    flock /tmp/lab-heavy.lock .venv/bin/python bench/quick_answers.py run --name quick_answers --preset quick --out /tmp/q
    flock /tmp/lab-heavy.lock .venv/bin/python bench/quick_answers.py run --name quick_4x --config studies/quick-4x.toml --out /tmp/q4
    # a finished folder, recorded with the wall time measured around it (no training)
    .venv/bin/python bench/quick_answers.py record --name quick_answers --out /tmp/q --wall 780 --command "..."
    # the two side by side: accuracy moves of none/oversample, every verdict that changes
    .venv/bin/python bench/quick_answers.py compare quick_answers quick_4x

Writes bench/results/<name>.json (bench/record.py) with every row's accuracy, minority F1, state,
curve, converged, gate and verdicts, and the criteria: wall ≤ 15 min, ≥ 5 seeds, none and oversample
converged, at least one CFG fill passing its gate. ``compare`` writes bench/results/quick_4x_compare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.record import RESULTS, write_result  # noqa: E402
from core.study.stats import describe_verdict  # noqa: E402

LIMIT_S = 15 * 60


def _pct(x):
    return None if x is None else round(100 * x, 2)


def summarise(res: dict) -> list[dict]:
    """One compact line per row: what BENCHMARKS.md shows."""
    out = []
    for r in res["rows"]:
        gate = r.get("gate")
        out.append({
            "method": r["method"], "state": r["state"], "n_seeds": r["n_seeds"], "steps": r["steps"],
            "accuracy": _pct(r["accuracy"]["mean"]), "accuracy_ci95": [_pct(v) for v in r["accuracy"]["ci95"] or []] or None,
            "minority_f1": r["minority_f1"]["mean"], "converged": r.get("converged"), "last_doubling_gain": _pct(r.get("curve_last_gain")),
            "curve": [{"steps": p["steps"], "accuracy": _pct(p["accuracy"])} for p in r.get("curve") or []],
            "gate": None if gate is None else {k: gate.get(k) for k in ("passed", "tail_consistency", "precision", "near_copy_rate", "rule")},
            "near_copy_rate": (r.get("near_copy_rate") or {}).get("mean"),
            "vs": {ref: {"diff_pts": _pct(v.get("diff_mean")), "p_holm": v.get("p_holm"), "mde_pts": _pct(v.get("mde")),
                         "verdict": v.get("verdict"), "words": describe_verdict(v), "sign_changes": v.get("sign_changes")}
                   for ref, v in (r.get("vs") or {}).items()},
        })
    return out


def criteria(res: dict, wall_s: float) -> dict:
    rows = {r["method"]: r for r in res["rows"]}
    cfg_gates = {m: (r.get("gate") or {}).get("passed") for m, r in rows.items() if r["fill"] == "cfg" and not r.get("partial")}
    return {"wall_s": round(wall_s, 1), "within_15_min": wall_s <= LIMIT_S, "state": res["state"],
            "min_seeds": min(r["n_seeds"] for r in rows.values() if r["state"] in ("ok", "below_gate")),
            "none_converged": rows["none"].get("converged"), "oversample_converged": rows["oversample"].get("converged"),
            "cfg_gates": cfg_gates, "a_cfg_fill_passes": any(v is True for v in cfg_gates.values())}


def markdown(lines: list[dict]) -> str:
    head = "| method | state | accuracy % (95% CI) | minority F1 | converged (last doubling, pts) | gate | vs none | vs oversample |\n|---|---|---|---|---|---|---|---|\n"
    body = []
    for r in lines:
        ci = r["accuracy_ci95"]
        acc = "—" if r["accuracy"] is None else f"{r['accuracy']:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
        g = r["gate"]
        gate = "—" if g is None or r["accuracy"] is None else ("✓" if g["passed"] else "✗" if g["passed"] is False else "?") + (
            f" {g['tail_consistency']:.2f} / {g['precision']:.2f} / {g['near_copy_rate']:.2f}" if g.get("tail_consistency") is not None else "")
        conv = "—" if r["converged"] is None or r["accuracy"] is None else ("yes" if r["converged"] else "no") + (
            f" ({r['last_doubling_gain']:+.2f})" if r["last_doubling_gain"] is not None else "")
        mf1 = "—" if r["minority_f1"] is None else f"{r['minority_f1']:.3f}"
        vs = [r["vs"].get(ref, {}).get("words", "—") if ref != r["method"] else "(itself)" for ref in ("none", "oversample")]
        body.append(f"| {r['method']} | {r['state']} | {acc} | {mf1} | {conv} | {gate} | {vs[0]} | {vs[1]} |")
    return head + "\n".join(body)


def curve_table(lines: list[dict]) -> str:
    """Accuracy (%) at every point of the budget curves, one line per row."""
    steps = next((([p["steps"] for p in r["curve"]]) for r in lines if r["curve"]), [])
    head = "| method | " + " | ".join(f"{s} steps" for s in steps) + " |\n|---|" + "---|" * len(steps) + "\n"
    return head + "\n".join(f"| {r['method']} | " + " | ".join(f"{p['accuracy']:.2f}" for p in r["curve"]) + " |" for r in lines if r["curve"])


def record(name: str, out: Path, wall_s: float, command: str) -> Path:
    res = json.loads((out / "results.json").read_text())
    lines = summarise(res)
    return write_result(name, {"criteria": criteria(res, wall_s), "rows": lines, "notes": res["notes"], "cells": res["cells"]},
                        markdown=markdown(lines) + "\n\nBudget curves, accuracy (%), mean over seeds:\n\n" + curve_table(lines), command=command)


def run(name: str, out: Path, preset: str | None, config: str | None) -> Path:
    fresh = Path(tempfile.mkdtemp(prefix="quick-fresh-"))  # empty models/ and .cache/: the judge trains as on a fresh clone
    argv = [sys.executable, "-m", "core", "experiment", *(["--preset", preset] if preset else ["--config", config]), "--json", "--out", str(out)]
    env = {**os.environ, "IMBALANCE_LAB_MODELS": str(fresh / "models"), "IMBALANCE_LAB_CACHE": str(fresh / "cache")}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the study exited {proc.returncode}; see {out}/status.json")
    return record(name, out, wall, " ".join(["python", *argv[1:]]))


def compare(a: str, b: str) -> Path:
    ra, rb = (json.loads((RESULTS / f"{n}.json").read_text())["results"] for n in (a, b))
    rows_a, rows_b = ({r["method"]: r for r in x["rows"]} for x in (ra, rb))
    moves = {m: round(rows_b[m]["accuracy"] - rows_a[m]["accuracy"], 2) for m in ("none", "oversample")}
    changed = [{"method": m, "vs": ref, a: rows_a[m]["vs"][ref]["verdict"], b: rows_b[m]["vs"][ref]["verdict"],
                f"{a}_diff_pts": rows_a[m]["vs"][ref]["diff_pts"], f"{b}_diff_pts": rows_b[m]["vs"][ref]["diff_pts"]}
               for m in rows_a if m in rows_b for ref in rows_a[m]["vs"]
               if ref in rows_b[m]["vs"] and rows_a[m]["vs"][ref]["verdict"] != rows_b[m]["vs"][ref]["verdict"]]
    gates = {m: [rows_a[m]["gate"] and rows_a[m]["gate"]["passed"], rows_b[m]["gate"] and rows_b[m]["gate"]["passed"]]
             for m in rows_a if m in rows_b and rows_a[m]["gate"] is not None}
    md = "| method | vs | " + a + " | " + b + " |\n|---|---|---|---|\n" + "\n".join(
        f"| {c['method']} | {c['vs']} | {c[a]} ({c[f'{a}_diff_pts']:+.2f} pts) | {c[b]} ({c[f'{b}_diff_pts']:+.2f} pts) |" for c in changed)
    return write_result("quick_4x_compare", {"accuracy_moves_pts": moves, "moves_below_1_5": all(abs(v) < 1.5 for v in moves.values()),
                                             "verdicts_changed": changed, "n_changed": len(changed), "gates": gates},
                        markdown=md if changed else "(no verdict changed)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--name", required=True)
    r.add_argument("--out", required=True, type=Path)
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset")
    src.add_argument("--config")
    c = sub.add_parser("record")
    c.add_argument("--name", required=True)
    c.add_argument("--out", required=True, type=Path)
    c.add_argument("--wall", required=True, type=float, help="seconds the study took, measured around it")
    c.add_argument("--command", required=True, help="the command that ran it")
    m = sub.add_parser("compare")
    m.add_argument("a")
    m.add_argument("b")
    args = p.parse_args()
    if args.cmd == "run":
        print(run(args.name, args.out, args.preset, args.config))
    elif args.cmd == "record":
        print(record(args.name, args.out, args.wall, args.command))
    else:
        print(compare(args.a, args.b))


if __name__ == "__main__":
    main()
