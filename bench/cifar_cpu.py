"""Does the cifar-cpu study show what the paper is about, within an hour on 2 cores? (issue 27)

    # the measurement: a fresh worktree (models/ and .cache/ empty: the dataset is decoded and the judge trains),
    # the machine otherwise idle, the wall time taken around the bare command
    git worktree add /work/cifarrun HEAD && cd /work/cifarrun && \
      /usr/bin/time -v flock /tmp/lab-heavy.lock python -m core experiment --study cifar-cpu \
      --data-dir ../shared/data/cifar10 --out runs/cifar-cpu --json
    # then, from the project: the finished folder and that wall time
    .venv/bin/python bench/cifar_cpu.py record --name cifar_cpu --out /work/cifarrun/runs/cifar-cpu --wall 2100 --command "..."
    # the 4× check: studies/cifar-cpu-4x.toml run to its own folder, then the rows' moves over the seeds both ran
    .venv/bin/python bench/cifar_cpu.py compare --main /work/cifarrun/runs/cifar-cpu --long runs/cifar-cpu-4x

Writes bench/results/<name>.json with every row (both endpoints with CIs, convergence on the validation split,
the gate beside real's figures, verdicts, shares of the gap: bench/quick_answers.py's summary) and issue 27's
criteria: wall ≤ 60 min; ≥ 5 seeds; none, oversample and real converged; real − none on minority F1 ≥ 0.10 with a
`better` verdict; the minority-F1 MDE of every comparison against none ≤ 0.05. ``compare`` writes
bench/results/cifar_cpu_4x.json: how far none, oversample and real move (test accuracy, minority F1; mean over the
seeds both studies ran, seed by seed) when every model trains 4× longer; the clause is < 2 points and < 0.02.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.quick_answers import _r, curve_table, markdown, summarise  # noqa: E402
from bench.record import write_result  # noqa: E402

LIMIT_S = 60 * 60
MIN_GAP_MINORITY = 0.10  # real − none, minority F1
MAX_MDE_MINORITY = 0.05  # against none
MAX_MOVE_ACCURACY = 0.02  # the 4× check: a share of accuracy (2 points)
MAX_MOVE_MINORITY = 0.02  # the 4× check: minority F1
FOUR_X_ROWS = ("none", "oversample", "real")


def criteria(res: dict, wall_s: float) -> dict:
    rows = {r["method"]: r for r in res["rows"]}
    none, real = rows["none"], rows.get("real") or {}
    gap = ((real.get("vs") or {}).get("none") or {}).get("minority_f1") or {}
    vs_none = {m: (((r.get("vs") or {}).get("none") or {}).get("minority_f1") or {}).get("mde") for m, r in rows.items() if m != "none"}
    mdes = {m: _r(v) for m, v in vs_none.items() if v is not None}
    gates = {m: (r.get("gate") or {}).get("passed") for m, r in rows.items() if r.get("fill") in ("cfg", "real")}
    converged = {m: rows[m].get("converged") for m in ("none", "oversample", "real") if m in rows}
    out = {
        "wall_s": round(wall_s, 1), "within_60_min": wall_s <= LIMIT_S, "state": res["state"],
        "min_seeds": min(r["n_seeds"] for r in rows.values() if r["state"] in ("ok", "below_gate")),
        "converged": converged, "all_three_converged": all(v is True for v in converged.values()) and len(converged) == 3,
        "none_minority_f1": _r((none.get("minority_f1") or {}).get("mean")),
        "real_minority_f1": _r((real.get("minority_f1") or {}).get("mean")),
        "real_minus_none_minority_f1": _r(gap.get("diff_mean")), "real_minus_none_minority_verdict": gap.get("verdict"),
        "gap_ok": (gap.get("diff_mean") or 0) >= MIN_GAP_MINORITY and gap.get("verdict") == "better",
        "minority_mde_vs_none": mdes, "max_minority_mde_vs_none": max(mdes.values()) if mdes else None,
        "mde_ok": bool(mdes) and max(mdes.values()) <= MAX_MDE_MINORITY,
        "gates": gates, "cells": res["cells"],
    }
    out["all_met"] = bool(out["within_60_min"] and out["min_seeds"] >= 5 and out["all_three_converged"] and out["gap_ok"] and out["mde_ok"])
    return out


def per_seed(folder: Path, methods=FOUR_X_ROWS, split: str = "test") -> dict[str, dict[int, dict]]:
    """{method: {seed: {accuracy, minority_f1, steps}}}: a study folder's main classifier runs (cell ids
    clf__<method>__<arch>__seed<k>, core.study.plan.cell_id), on the test split or, with split="validation", on the
    validation split (runs without validation figures are left out). methods=None: every method."""
    out: dict[str, dict[int, dict]] = {}
    for res in sorted(folder.glob("cells/clf__*__seed*/results.json")):
        method, seed = res.parent.name.split("__")[1], int(res.parent.name.rsplit("seed", 1)[1])
        if methods is None or method in methods:
            r = json.loads(res.read_text())
            fig = r if split == "test" else (r.get("validation") or {})
            if fig.get("minority_f1") is not None:
                out.setdefault(method, {})[seed] = {"accuracy": fig["accuracy"], "minority_f1": fig["minority_f1"], "steps": r["steps"]}
    return out


def moves(main: dict[str, dict[int, dict]], long: dict[str, dict[int, dict]]) -> dict:
    """How far each row moves from the main study to its 4× twin: the mean over the seeds both ran of
    (long − main), seed by seed, on test accuracy and minority F1, and whether both stay under the clause's limits.
    A row either study lacks is reported missing, and the check then fails."""
    rows, missing = {}, []
    for m in FOUR_X_ROWS:
        seeds = sorted(set(main.get(m, {})) & set(long.get(m, {})))
        if not seeds:
            missing.append(m)
            continue
        d = {k: sum(long[m][s][k] - main[m][s][k] for s in seeds) / len(seeds) for k in ("accuracy", "minority_f1")}
        rows[m] = {"seeds": seeds, "steps": [main[m][seeds[0]]["steps"], long[m][seeds[0]]["steps"]],
                   "main": {k: _r(sum(main[m][s][k] for s in seeds) / len(seeds)) for k in ("accuracy", "minority_f1")},
                   "long": {k: _r(sum(long[m][s][k] for s in seeds) / len(seeds)) for k in ("accuracy", "minority_f1")},
                   "move_accuracy": _r(d["accuracy"]), "move_minority_f1": _r(d["minority_f1"]),
                   "ok": abs(d["accuracy"]) < MAX_MOVE_ACCURACY and abs(d["minority_f1"]) < MAX_MOVE_MINORITY}
    return {"rows": rows, "missing": missing, "all_ok": not missing and all(r["ok"] for r in rows.values())}


def moves_markdown(res: dict) -> str:
    lines = ["| row | seeds | steps | accuracy %: main → 4× (move, points) | minority F1: main → 4× (move) | < 2 points and < 0.02 |",
             "|---|---|---|---|---|---|"]
    for m, r in res["rows"].items():
        lines.append(f"| {m} | {len(r['seeds'])} | {r['steps'][0]} → {r['steps'][1]} | {100 * r['main']['accuracy']:.1f} → "
                     f"{100 * r['long']['accuracy']:.1f} ({100 * r['move_accuracy']:+.1f}) | {r['main']['minority_f1']:.3f} → "
                     f"{r['long']['minority_f1']:.3f} ({r['move_minority_f1']:+.3f}) | {'yes' if r['ok'] else 'no'} |")
    lines += [f"| {m} | missing | | | | no |" for m in res["missing"]]
    return "\n".join(lines)


def compare(main: Path, long: Path, command: str) -> Path:
    res = moves(per_seed(main), per_seed(long))
    return write_result("cifar_cpu_4x", {**res, "main": str(main), "long": str(long)}, markdown=moves_markdown(res), command=command)


def record(name: str, out: Path, wall_s: float, command: str, extra: dict | None = None) -> Path:
    res = json.loads((out / "results.json").read_text())
    lines = summarise(res)
    return write_result(name, {"criteria": criteria(res, wall_s), "rows": lines, "notes": res["notes"], "cells": res["cells"],
                               "test_size": res.get("test_size"), **({"measurement": extra} if extra else {})},
                        markdown=markdown(lines) + "\n\nBudget curves (validation split), accuracy % / minority F1, mean over seeds:\n\n"
                        + curve_table(lines), command=command)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="part", required=True)
    r = sub.add_parser("record")
    r.add_argument("--name", default="cifar_cpu")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--wall", type=float, required=True, help="seconds, measured around the bare command")
    r.add_argument("--command", required=True)
    r.add_argument("--extra", type=Path, help="a JSON file of how the measurement went, kept as results.measurement")
    c = sub.add_parser("compare")
    c.add_argument("--main", type=Path, required=True, help="the cifar-cpu study's folder")
    c.add_argument("--long", type=Path, required=True, help="the cifar-cpu-4x study's folder")
    args = p.parse_args()
    if args.part == "compare":
        print(compare(args.main, args.long, " ".join(["python", *sys.argv])))
        return 0
    extra = json.loads(args.extra.read_text()) if args.extra else None
    print(record(args.name, args.out, args.wall, args.command, extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
