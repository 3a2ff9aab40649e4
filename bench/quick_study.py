"""The quick study twice, side by side: budget "steps" (every method the same optimizer steps)
and budget "epochs" (the paper's protocol), on the same seeds and subsets.

    flock /tmp/bench.lock .venv/bin/python bench/quick_study.py            # the measurement (fresh folders)
    .venv/bin/python bench/quick_study.py --methods none,oversample --seeds 0,1 --steps 20 --cfg-steps 5 \\
        --sampler-steps 4 --results-dir /tmp/qs                            # a cut-down check of the script
    .venv/bin/python bench/quick_study.py --from-folders                   # re-record finished folders, no training

Writes bench/results/quick_study.json (bench/record.py; the prose is bench/templates/quick_study.md):
per budget the wall minutes, the state,
and every row's steps, images_seen, train_size, accuracy / macro-F1 / minority-F1 as mean, std and
95 % CI, the binomial half-width of the accuracy, and the paired verdicts; plus a markdown table.
The "steps" study runs first, so on a fresh clone its wall time includes the one-time judge training
(the 15-minute target of the quick preset). The figures are what the run measured; the preset is
not tuned to favour any method.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.record import RESULTS, write_result  # noqa: E402

KEEP = ("method", "fill", "loss", "w", "classifier", "state", "errors", "reason", "steps", "images_seen", "train_size", "n_seeds",
        "seeds", "accuracy", "macro_f1", "minority_f1", "accuracy_binomial_hw95", "vs", "fd_judge", "near_copy_rate", "precision", "recall")


def study_config(budget: str, args):
    from core.study.config import StudyConfig
    from core.study.presets import preset

    d = preset("quick").to_dict()
    d["budget"] = budget
    if args.methods:
        d["methods"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.seeds:
        d["seeds"] = [int(s) for s in args.seeds.split(",")]
    if args.steps:
        d["classifier"]["steps"] = args.steps
    if args.cfg_steps:
        d["cfg_train"]["steps"] = args.cfg_steps
    if args.sampler_steps:
        d["cfg_sample"]["steps"] = args.sampler_steps
    return StudyConfig.from_dict(d)


def run_one(budget: str, args) -> dict:
    from core.callbacks import Callbacks
    from core.study.run import run_study

    out = Path(args.out) / f"quick_{budget}"
    if out.exists() and not args.resume:
        shutil.rmtree(out)
    cfg = study_config(budget, args)
    t0, last = time.time(), [""]

    def progress(done, total, msg=""):
        head = msg.split(":")[0]
        if head != last[0]:
            last[0] = head
            print(f"[{budget} {time.time() - t0:6.0f} s] [{done}/{total}] {msg}", flush=True)

    run_study(cfg, out, Callbacks(on_progress=progress))
    return collect(budget, out, time.time() - t0)


def collect(budget: str, out: Path, wall_s: float) -> dict:
    """One budget's record from its finished study folder."""
    from core.study.config import StudyConfig
    from core.study.run import load_results
    from core.store.atomic import read_json

    res = load_results(out)
    cfg = StudyConfig.from_dict(read_json(out / "config.json"))
    return {"budget": budget, "wall_minutes": round(wall_s / 60, 2), "state": res["state"], "cells": res["cells"], "test_size": res["test_size"],
            "notes": res["notes"], "config": {k: cfg.to_dict()[k] for k in ("seeds", "methods", "cfg_ws", "classifier", "cfg_train", "cfg_sample")},
            "rows": [{k: r.get(k) for k in KEEP} for r in res["rows"]]}


def _acc(r: dict) -> str:
    a = r["accuracy"]
    if a["mean"] is None:
        return f"{r['state']}"
    ci = f" [{a['ci95'][0] * 100:.1f}, {a['ci95'][1] * 100:.1f}]" if a["ci95"] else ""
    return f"{a['mean'] * 100:.1f}{ci}"


def _vs(r: dict, ref: str) -> str:
    c = r["vs"].get(ref)
    if not c or c["diff_mean"] is None:
        return "–"
    return f"{c['diff_mean'] * 100:+.1f} {c['verdict']}"


def table(runs: dict[str, dict]) -> str:
    """Rows = methods; for each budget: steps, images seen, accuracy mean [95 % CI] and the verdicts."""
    budgets = list(runs)
    order = [r["method"] for r in runs[budgets[0]]["rows"]]
    refs = sorted({ref for b in budgets for r in runs[b]["rows"] for ref in r["vs"]}, key=lambda m: order.index(m) if m in order else len(order))
    head = ["method"]
    for b in budgets:
        head += [f"{b}: steps", f"{b}: images seen", f"{b}: accuracy % [95% CI]"] + [f"{b}: vs {ref}" for ref in refs]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {b: {(r["method"], r["classifier"]): r for r in runs[b]["rows"]} for b in budgets}
    for key in by[budgets[0]]:
        cells = [key[0] if len({k[1] for k in by[budgets[0]]}) == 1 else f"{key[0]} × {key[1]}"]
        for b in budgets:
            r = by[b].get(key)
            if r is None:
                cells += ["–"] * (3 + len(refs))
                continue
            cells += [str(r["steps"]), str(r["images_seen"]), _acc(r)] + [_vs(r, ref) for ref in refs]
        out.append("| " + " | ".join(cells) + " |")
    out += fill_quality(runs[budgets[0]]["rows"])
    hw = [r["accuracy_binomial_hw95"] for b in budgets for r in runs[b]["rows"] if r["accuracy_binomial_hw95"] is not None]
    foot = ["Wall time: " + ", ".join(f"{b} {runs[b]['wall_minutes']:.1f} min ({runs[b]['state']})" for b in budgets) + "."]
    if hw:
        foot.append(f"Test-set binomial 95% half-width of an accuracy: {min(hw) * 100:.1f} to {max(hw) * 100:.1f} points "
                    f"({runs[budgets[0]]['test_size']} test images); the CIs above cover seeds and subsets only.")
    return "\n".join(out + [""] + foot)


def fill_quality(rows: list[dict]) -> list[str]:
    """The filled sets themselves (the same images under either budget): judge-feature FD of (imbalanced + added)
    against the balanced train set, and the added images' near-copy rate, precision and recall, mean over seeds."""
    fills = [r for r in rows if r.get("near_copy_rate") and r["near_copy_rate"].get("mean") is not None]
    if not fills:
        return []

    def m(r, k, scale=1.0, fmt="{:.2f}"):
        v = (r.get(k) or {}).get("mean")
        return "–" if v is None else fmt.format(v * scale)

    out = ["", "Filled sets (mean over seeds; the added images are the same under both budgets):", "",
           "| fill | images added | FD (judge CNN features) of the filled set | near-copy rate % | precision | recall |", "|---|---|---|---|---|---|"]
    for r in fills:
        out.append(f"| {r['method']} | {r['near_copy_rate'].get('n_images', '–')} | {m(r, 'fd_judge')} | {m(r, 'near_copy_rate', 100, '{:.1f}')} | "
                   f"{m(r, 'precision')} | {m(r, 'recall')} |")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "bench" / "out"), help="parent of the two study folders (git-ignored)")
    p.add_argument("--resume", action="store_true", help="continue the studies in --out instead of starting fresh")
    p.add_argument("--budgets", default="steps,epochs")
    p.add_argument("--methods", default=None, help="cut-down check only: override the methods")
    p.add_argument("--seeds", default=None, help="cut-down check only: override the seeds")
    p.add_argument("--steps", type=int, default=None, help="cut-down check only: classifier steps")
    p.add_argument("--cfg-steps", type=int, default=None, help="cut-down check only: CFG training steps")
    p.add_argument("--sampler-steps", type=int, default=None, help="cut-down check only: sampler steps")
    p.add_argument("--results-dir", default=None, help=f"where quick_study.json goes (default {RESULTS})")
    p.add_argument("--from-folders", action="store_true",
                   help="no training: rebuild the record from the finished study folders in --out (wall time = the studies' own seconds)")
    args = p.parse_args()

    if args.from_folders:
        from core.study.run import load_results

        runs = {b: collect(b, Path(args.out) / f"quick_{b}", load_results(Path(args.out) / f"quick_{b}")["seconds"]) for b in args.budgets.split(",")}
    else:
        runs = {b: run_one(b, args) for b in args.budgets.split(",")}
    md = table(runs)
    print(md)
    cut = any(getattr(args, k) for k in ("methods", "seeds", "steps", "cfg_steps", "sampler_steps"))
    results = {"runs": runs, "cut_down": cut}
    path = write_result("quick_study", results, markdown=md, out_dir=Path(args.results_dir) if args.results_dir else None)
    print(f"wrote {path}")
    if not cut and not args.results_dir:
        print("now rewrite 'What the numbers show' in bench/templates/quick_study.md, then run bench/assemble.py")
    return 0 if all(r["state"] == "done" for r in runs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
