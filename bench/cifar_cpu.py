"""Does the cifar-cpu study show what the paper is about, within an hour on 2 cores? (issue 27)

    # the measurement: a fresh worktree (models/ and .cache/ empty: the dataset is decoded and the judge trains),
    # the machine otherwise idle, the wall time taken around the bare command
    git worktree add /work/cifarrun HEAD && cd /work/cifarrun && \
      /usr/bin/time -v flock /tmp/lab-heavy.lock python -m core experiment --study cifar-cpu \
      --data-dir ../shared/data/cifar10 --out runs/cifar-cpu --json
    # then, from the project: the finished folder and that wall time
    .venv/bin/python bench/cifar_cpu.py record --name cifar_cpu --out /work/cifarrun/runs/cifar-cpu --wall 2100 --command "..."

Writes bench/results/<name>.json with every row (both endpoints with CIs, convergence on the validation split,
the gate beside real's figures, verdicts, shares of the gap: bench/quick_answers.py's summary) and issue 27's
criteria: wall ≤ 60 min; ≥ 5 seeds; none, oversample and real converged; real − none on minority F1 ≥ 0.10 with a
`better` verdict; the minority-F1 MDE of every comparison against none ≤ 0.05.
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
    args = p.parse_args()
    extra = json.loads(args.extra.read_text()) if args.extra else None
    print(record(args.name, args.out, args.wall, args.command, extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
