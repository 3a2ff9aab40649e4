"""Does the quick study answer? Its run from a fresh start, the criteria of issue 17 item 6, and the
same study at 4× the steps side by side.

    # the measurement (what a fresh clone runs; models/ and .cache/ empty, so the judge trains too)
    flock /tmp/lab-heavy.lock .venv/bin/python bench/quick_answers.py run --name quick_answers --study quick --out /tmp/q
    flock /tmp/lab-heavy.lock .venv/bin/python bench/quick_answers.py run --name quick_4x --config studies/quick-4x.toml --out /tmp/q4
    # a finished folder, recorded with the wall time measured around it (no training)
    .venv/bin/python bench/quick_answers.py record --name quick_answers --out /tmp/q --wall 780 --command "..." [--extra how.json]
    # the two side by side: accuracy moves of none/oversample, every verdict that changes
    .venv/bin/python bench/quick_answers.py compare quick_answers quick_4x

Writes bench/results/<name>.json (bench/record.py) with every row's accuracy and minority F1 (both
endpoints, with CIs), state, budget curve (on the validation split) and converged, its gate with the real
images' calibration figures beside it, each verdict for both endpoints and the share of the gap closed
(core.study.gap; "n/a" unless real − none is detected), and the criteria: wall ≤ 15 min, ≥ 5 seeds, none and
oversample converged, at least one CFG fill passing its gate (issue 17), and issue 25's rows: `real`
and its gate, the curves on the validation split, minority-F1 verdicts in the Holm family, real − none
on both endpoints, which shares could be stated. ``compare`` writes bench/results/quick_4x_compare.json.
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


def _r(x, nd=4):
    return None if x is None else round(float(x), nd)


ENDPOINTS = ("accuracy", "minority_f1")
GATE_KEYS = ("passed", "tail", "tail_consistency", "precision", "near_copy_rate", "real_tail_consistency", "real_precision",
             "failed_seeds", "images", "rule")


def _verdict(v: dict, scale) -> dict:
    """One endpoint of one comparison: the difference (accuracy in points, minority F1 as is), p_holm, MDE, verdict, words."""
    return {"diff": scale(v.get("diff_mean")), "p_holm": v.get("p_holm"), "mde": scale(v.get("mde")), "verdict": v.get("verdict"),
            "words": describe_verdict(v)}


def _gate(gate: dict | None) -> dict | None:
    if gate is None:
        return None
    out = {k: gate.get(k) for k in GATE_KEYS}
    out["per_seed"] = {s: {k: g.get(k) for k in ("passed", "tail_consistency", "precision", "near_copy_rate", "real_tail_consistency",
                                                 "real_precision")} for s, g in (gate.get("per_seed") or {}).items()}
    return out


def summarise(res: dict) -> list[dict]:
    """One compact line per row: what BENCHMARKS.md shows. Both endpoints (accuracy in points, minority F1),
    the gate with real's figures beside it, each verdict for both endpoints, the share of the gap closed."""
    out = []
    for r in res["rows"]:
        mf1 = r.get("minority_f1") or {}
        out.append({
            "method": r["method"], "state": r["state"], "n_seeds": r["n_seeds"], "steps": r["steps"],
            "accuracy": _pct(r["accuracy"]["mean"]), "accuracy_ci95": [_pct(v) for v in r["accuracy"]["ci95"] or []] or None,
            "minority_f1": _r(mf1.get("mean")), "minority_f1_ci95": [_r(v) for v in mf1.get("ci95") or []] or None,
            "minority_classes": r.get("minority_classes"), "converged": r.get("converged"),
            "last_doubling_gain": _pct(r.get("curve_last_gain")), "last_doubling_gain_minority": _r(r.get("curve_last_gain_minority")),
            "curve_split": r.get("curve_split"),
            "curve": [{"steps": p["steps"], "accuracy": _pct(p["accuracy"]), "minority_f1": _r(p.get("minority_f1"))} for p in r.get("curve") or []],
            "gate": _gate(r.get("gate")), "near_copy_rate": (r.get("near_copy_rate") or {}).get("mean"),
            "real_images": (r.get("real_images") or {}).get("text"),
            "vs": {ref: {"diff_pts": _pct(v.get("diff_mean")), "p_holm": v.get("p_holm"), "mde_pts": _pct(v.get("mde")),
                         "verdict": v.get("verdict"), "words": describe_verdict(v), "sign_changes": v.get("sign_changes"),
                         "minority_f1": _verdict(v.get("minority_f1") or {}, _r)}
                   for ref, v in (r.get("vs") or {}).items()},
            "share_of_gap": {m: {"share": _r(g.get("share"), 3), "ci95": [_r(x, 3) for x in g.get("ci95") or []] or None,
                                 "detected": g.get("detected"), "text": g.get("text")}
                             for m, g in (r.get("share_of_gap") or {}).items()},
        })
    return out


def criteria(res: dict, wall_s: float) -> dict:
    """Issue 17 item 6 (wall, seeds, none/oversample converged, a CFG fill through its gate) and issue 25's rows:
    `real` and its gate, the curves on the validation split, minority-F1 verdicts in the Holm family, real − none
    on both endpoints and whether a share of the gap could be stated."""
    rows = {r["method"]: r for r in res["rows"]}
    cfg_gates = {m: (r.get("gate") or {}).get("passed") for m, r in rows.items() if r["fill"] == "cfg" and not r.get("partial")}
    real, none = rows.get("real"), rows["none"]
    entries = [(m, ref, e) for m, r in rows.items() for ref, e in (r.get("vs") or {}).items() if not e.get("mirrored")]
    gap = ((real or {}).get("vs") or {}).get("none") or {}
    gap_sides = {"accuracy": gap, "minority_f1": gap.get("minority_f1") or {}}
    shares = {m: {k: g.get("text") for k, g in r["share_of_gap"].items()} for m, r in rows.items() if r.get("share_of_gap")}
    return {"wall_s": round(wall_s, 1), "within_15_min": wall_s <= LIMIT_S, "state": res["state"],
            "min_seeds": min(r["n_seeds"] for r in rows.values() if r["state"] in ("ok", "below_gate")),
            "none_converged": none.get("converged"), "oversample_converged": rows["oversample"].get("converged"),
            "cfg_gates": cfg_gates, "a_cfg_fill_passes": any(v is True for v in cfg_gates.values()),
            "real_row": real is not None, "real_state": (real or {}).get("state"), "real_converged": (real or {}).get("converged"),
            "real_gate_passed": ((real or {}).get("gate") or {}).get("passed"),
            "curves_on_validation": all(r.get("curve_split") == "validation" for r in rows.values() if r.get("curve")),
            "n_pairs": len(entries),
            "holm_accuracy": sum(e.get("p_holm") is not None for _, _, e in entries),
            "holm_minority_f1": sum((e.get("minority_f1") or {}).get("p_holm") is not None for _, _, e in entries),
            "minority_verdicts_in_holm": any((e.get("minority_f1") or {}).get("p_holm") is not None for _, _, e in entries),
            "real_minus_none": {k: {"diff": (_pct if k == "accuracy" else _r)(e.get("diff_mean")), "verdict": e.get("verdict"),
                                    "words": describe_verdict(e), "detected": e.get("verdict") in ("better", "worse")}
                                for k, e in gap_sides.items()},
            "none_minority_f1": _r((none.get("minority_f1") or {}).get("mean")),
            "shares_of_gap": shares, "any_share_stated": any(g.get("share") is not None for r in rows.values()
                                                             for g in (r.get("share_of_gap") or {}).values())}


def _f(v, spec=".3f") -> str:
    return "—" if v is None else format(v, spec)


def _ci(v, ci, spec) -> str:
    return "—" if v is None else format(v, spec) + (f" [{format(ci[0], spec)}, {format(ci[1], spec)}]" if ci else "")


def _gate_cell(g: dict | None) -> str:
    if g is None:
        return "—"
    mark = {True: "✓", False: "✗"}.get(g["passed"], "not measured")
    if g.get("tail_consistency") is None:
        return mark
    fails = f"; failed seeds {', '.join(g['failed_seeds'])}" if g.get("failed_seeds") else ""
    return (f"{mark} {_f(g['tail_consistency'], '.2f')} / {_f(g['precision'], '.2f')} / {_f(g['near_copy_rate'], '.2f')} "
            f"(real {_f(g.get('real_tail_consistency'), '.2f')} / {_f(g.get('real_precision'), '.2f')}){fails}")


def markdown(lines: list[dict]) -> str:
    """Two tables: each row's figures (both endpoints, convergence, the gate beside real's) and its verdicts and shares."""
    head = ("| method | state | accuracy % (95% CI) | minority F1 (95% CI) | converged (last doubling: pts / F1) | gate: consistency / "
            "precision / near-copies (real's) |\n|---|---|---|---|---|---|\n")
    body = []
    for r in lines:
        acc = _ci(r["accuracy"], r["accuracy_ci95"], ".1f")
        mf1 = _ci(r["minority_f1"], r["minority_f1_ci95"], ".3f")
        conv = "—" if r["converged"] is None or r["accuracy"] is None else ("yes" if r["converged"] else "no") + (
            f" ({r['last_doubling_gain']:+.2f} / {_f(r.get('last_doubling_gain_minority'), '+.3f')})" if r["last_doubling_gain"] is not None else "")
        gate = "—" if r["accuracy"] is None else _gate_cell(r["gate"])
        if r.get("real_images"):
            gate += f"; {r['real_images']}"
        body.append(f"| {r['method']} | {r['state']} | {acc} | {mf1} | {conv} | {gate} |")
    refs = [ref for ref in ("none", "oversample", "real") if any(ref in r["vs"] for r in lines)]
    head2 = ("| method | " + " | ".join(f"vs {ref}: accuracy; minority F1" for ref in refs) + " | share of gap: accuracy; minority F1 |\n|---|"
             + "---|" * (len(refs) + 1) + "\n")
    body2 = []
    for r in lines:
        cells = []
        for ref in refs:
            v = r["vs"].get(ref)
            cells.append("(itself)" if ref == r["method"] else "—" if v is None else
                         f"{_f(v['diff_pts'], '+.2f')} pts, {v['words']}; {_f(v['minority_f1']['diff'], '+.3f')}, {v['minority_f1']['words']}")
        sog = r.get("share_of_gap") or {}
        share = "; ".join((sog.get(m) or {}).get("text") or "—" for m in ENDPOINTS) if sog else "—"
        body2.append(f"| {r['method']} | " + " | ".join(cells) + f" | {share} |")
    return head + "\n".join(body) + "\n\nVerdicts (test split; Holm over both endpoints) and the share of the gap closed:\n\n" + head2 + "\n".join(body2)


def curve_table(lines: list[dict]) -> str:
    """Accuracy (%) and minority F1 at every point of the budget curves (the split the curves read), one line per row."""
    steps = next((([p["steps"] for p in r["curve"]]) for r in lines if r["curve"]), [])
    head = "| method | " + " | ".join(f"{s} steps" for s in steps) + " |\n|---|" + "---|" * len(steps) + "\n"
    return head + "\n".join(f"| {r['method']} | " + " | ".join(f"{p['accuracy']:.2f} / {_f(p.get('minority_f1'))}" for p in r["curve"]) + " |"
                            for r in lines if r["curve"])


def record(name: str, out: Path, wall_s: float, command: str, extra: dict | None = None) -> Path:
    """``extra``: how the measurement went (e.g. a run killed and resumed: its segments), kept as results["measurement"]."""
    res = json.loads((out / "results.json").read_text())
    lines = summarise(res)
    split = next((r["curve_split"] for r in lines if r.get("curve_split")), "test")
    return write_result(name, {"criteria": criteria(res, wall_s), "rows": lines, "notes": res["notes"], "cells": res["cells"],
                               **({"measurement": extra} if extra else {})},
                        markdown=markdown(lines) + f"\n\nBudget curves ({split} split), accuracy % / minority F1, mean over seeds:\n\n" + curve_table(lines), command=command)


def run(name: str, out: Path, study: str | None, config: str | None) -> Path:
    fresh = Path(tempfile.mkdtemp(prefix="quick-fresh-"))  # empty models/ and .cache/: the judge trains as on a fresh clone
    argv = [sys.executable, "-m", "core", "experiment", *(["--study", study] if study else ["--config", config]), "--json", "--out", str(out)]
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
    src.add_argument("--study", help="a built-in study (core.study.presets), as `core experiment --study`")
    src.add_argument("--config")
    c = sub.add_parser("record")
    c.add_argument("--name", required=True)
    c.add_argument("--out", required=True, type=Path)
    c.add_argument("--wall", required=True, type=float, help="seconds the study took, measured around it")
    c.add_argument("--command", required=True, help="the command that ran it")
    c.add_argument("--extra", type=Path, help="a JSON file of how the measurement went, kept as results.measurement")
    m = sub.add_parser("compare")
    m.add_argument("a")
    m.add_argument("b")
    args = p.parse_args()
    if args.cmd == "run":
        print(run(args.name, args.out, args.study, args.config))
    elif args.cmd == "record":
        print(record(args.name, args.out, args.wall, args.command, json.loads(args.extra.read_text()) if args.extra else None))
    else:
        print(compare(args.a, args.b))


if __name__ == "__main__":
    main()
