"""Size the CIFAR-10 CPU study (issue 27): measure candidate recipes on this CPU, on the validation split.

    # networks alone, one thread (a CPU lane): classifier and CFG UNet steps/s at each resolution
    flock /tmp/lab-heavy.lock .venv/bin/python bench/cifar_recipe.py speed --sizes 8,12,16
    # a candidate study run by the lab's own code (core experiment), its wall time and cells' seconds,
    # and what the recipe is sized on: the rows' budget curves on the validation split, `converged`,
    # real − none on both endpoints (validation), the gate figures
    flock /tmp/lab-heavy.lock .venv/bin/python bench/cifar_recipe.py study --tag T --config FILE.toml \
        --out DIR [-- --seeds 0,1 --steps 600 --methods none,oversample]   # after --: `core experiment` flags

A candidate never reads the test split for its decisions: `study` records only the validation curves
(core.study.rows: the full run's point is its validation figure) and the cells' timings; the test figures
of the candidate runs stay in DIR, unread. Results are merged into bench/results/cifar_recipe.json:
results.speed[threads][size], results.studies[tag].
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("IMBALANCE_LAB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.quick_recipe import _rate, train_step  # noqa: E402
from bench.record import RESULTS, write_result  # noqa: E402

NAME = "cifar_recipe"


def _previous() -> dict:
    path = RESULTS / f"{NAME}.json"
    if path.exists():
        return json.loads(path.read_text()).get("results", {})
    return {}


def speed(args) -> dict:
    """Training steps/s of the `small` ResNet (batch --clf-batch) and the `tiny` CFG UNet (batch --cfg-batch)
    at each size, on --threads threads: what one CPU lane of a study does."""
    import torch

    from core.nets.resnet import build_classifier
    from core.nets.unet import build_unet

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    out = {}
    for s in [int(v) for v in args.sizes.split(",")]:
        net = build_classifier("small", 10, 3)
        opt = torch.optim.SGD(net.parameters(), 0.05, momentum=0.9)
        xc, yc = torch.randn(args.clf_batch, 3, s, s), torch.randint(0, 10, (args.clf_batch,))

        unet = build_unet("tiny", 10, 3, s)
        o2 = torch.optim.AdamW(unet.parameters(), 1e-3)
        x, t, y = torch.randn(args.cfg_batch, 3, s, s), torch.randint(0, 1000, (args.cfg_batch,)), torch.randint(0, 11, (args.cfg_batch,))

        out[str(s)] = {"clf_steps_per_s": round(_rate(train_step(opt, lambda: torch.nn.functional.cross_entropy(net(xc), yc))), 3), "clf_batch": args.clf_batch,
                       "cfg_steps_per_s": round(_rate(train_step(o2, lambda: (unet(x, t, class_labels=y).sample - x).pow(2).mean())), 3), "cfg_batch": args.cfg_batch}
        print(s, json.dumps(out[str(s)]), flush=True)
    prev = _previous()
    prev.setdefault("speed", {})[f"threads{args.threads}"] = out
    write_result(NAME, prev, markdown=table(prev), command=" ".join(["python", *sys.argv]))
    return out


def table(results: dict) -> str:
    """One line per candidate and row: the validation curve (accuracy % / minority F1 at each point), converged, and
    real − none at the last point; then the speed probe."""
    lines = ["| candidate | row | validation curve: steps → accuracy % / minority F1 | converged (last doubling: pts / F1) |",
             "|---|---|---|---|"]
    for tag, rec in (results.get("studies") or {}).items():
        for r in rec["rows"]:
            curve = ", ".join(f"{p['steps']} → {100 * p['accuracy']:.1f} / {p['minority_f1']:.3f}" for p in r.get("curve") or [])
            gain = "" if r.get("last_gain") is None else f" ({100 * r['last_gain']:+.1f} / {r['last_gain_minority']:+.3f})"
            lines.append(f"| {tag} | {r['method']} | {curve} | {'yes' if r['converged'] else 'no'}{gain} |")
        g = rec.get("real_minus_none_validation")
        if g:
            lines.append(f"| {tag} | real − none | {100 * g['accuracy']:+.1f} points, {g['minority_f1']:+.3f} minority F1 (last point) | "
                         f"{rec['wall_s']:.0f} s wall |")
    spread = [(tag, m, v) for tag, rec in (results.get("studies") or {}).items() for m, v in (rec.get("seed_spread") or {}).items()]
    if spread:
        lines += ["", "| candidate | row − none, minority F1 (validation) | seeds | mean | sd over seeds | projected MDE at 5 / 8 / 10 seeds (30 verdicts) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {tag} | {m} | {v['n']} | {v['diff_mean']:+.3f} | {v['sd_diff']:.3f} | "
                  f"{v['mde_minority_f1_at']['5']:.3f} / {v['mde_minority_f1_at']['8']:.3f} / {v['mde_minority_f1_at']['10']:.3f} |"
                  for tag, m, v in spread]
    speed = (results.get("speed") or {}).get("threads1") or {}
    if speed:
        lines += ["", "| size (px) | small ResNet steps/s (batch 128) | tiny CFG UNet steps/s (batch 64) |", "|---|---|---|"]
        lines += [f"| {k} | {v['clf_steps_per_s']:.1f} | {v['cfg_steps_per_s']:.1f} |" for k, v in speed.items()]
    return "\n".join(lines)


def _cell_seconds(folder: Path) -> dict[str, float]:
    """Seconds each training run took: its config.json is written when it starts and its status.json last,
    when it ends (classifier cells, curve points, CFG models); fill cells write results.json only."""
    out = {}
    for st in sorted(folder.glob("cells/*/status.json")) + sorted(folder.glob("curves/*/*/status.json")) + sorted(folder.glob("cfg/*/status.json")):
        cfg = st.parent / "config.json"
        if cfg.exists():
            out[str(st.parent.relative_to(folder))] = round(st.stat().st_mtime - cfg.stat().st_mtime, 1)
    return out


def seed_spread(folder: Path, family: int = 30, seeds_for: tuple[int, ...] = (5, 6, 7, 8, 10)) -> dict:
    """How far apart the seeds are, on the validation split: for each row, the sample sd over seeds of its
    minority-F1 difference from `none` (seed by seed, as the paired verdicts take it), and the minority-F1 MDE that
    sd would give at n seeds in a Holm family of ``family`` verdicts (core.study.stats.mde at df = n − 1, without the
    test-set term: a projection to size the seed count, not a verdict). The cifar-cpu family is 30: 15 pairs × 2 endpoints."""
    import statistics

    from bench.cifar_cpu import per_seed
    from core.study.stats import mde

    per = {m: {s: f["minority_f1"] for s, f in seeds.items()} for m, seeds in per_seed(folder, None, "validation").items()}
    out = {}
    for method, vals in sorted(per.items()):
        common = sorted(set(vals) & set(per.get("none", {})))
        if method == "none" or len(common) < 2:
            continue
        d = [vals[s] - per["none"][s] for s in common]
        sd = statistics.stdev(d)
        out[method] = {"n": len(d), "diff_mean": round(statistics.mean(d), 4), "sd_diff": round(sd, 4),
                       "mde_minority_f1_at": {str(n): round(mde(sd / n ** 0.5, family, df=n - 1), 4) for n in seeds_for}}
    return out


def study(args) -> dict:
    """Run the candidate with the lab's CLI, time it, keep only validation figures and timings."""
    out = Path(args.out)
    cmd = [sys.executable, "-m", "core", "experiment", "--config", args.config, "--out", str(out)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    cmd += [a for a in (args.extra or []) if a != "--"]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT)
    wall = time.time() - t0
    res = json.loads((out / "results.json").read_text())
    rows = []
    for r in res["rows"]:
        rows.append({"method": r["method"], "state": r["state"], "n_seeds": r.get("n_seeds"), "steps": r.get("steps"),
                     "curve_split": r.get("curve_split"), "curve": r.get("curve"), "converged": r.get("converged"),
                     "last_gain": r.get("curve_last_gain"), "last_gain_minority": r.get("curve_last_gain_minority"),
                     "gate": {k: (r.get("gate") or {}).get(k) for k in ("passed", "tail_consistency", "precision",
                                                                      "real_tail_consistency", "real_precision", "near_copy_rate")}
                     if r.get("gate") else None})
    by = {r["method"]: r for r in rows}
    gap = None
    if "none" in by and "real" in by and by["none"]["curve"] and by["real"]["curve"]:
        n, re_ = by["none"]["curve"][-1], by["real"]["curve"][-1]
        gap = {"accuracy": re_["accuracy"] - n["accuracy"],
               "minority_f1": None if n.get("minority_f1") is None else re_["minority_f1"] - n["minority_f1"],
               "split": by["none"]["curve_split"]}
    rec = {"config": args.config, "flags": [a for a in (args.extra or []) if a != "--"], "rc": proc.returncode, "wall_s": round(wall, 1), "rows": rows,
           "real_minus_none_validation": gap, "cell_seconds": _cell_seconds(out), "seed_spread": seed_spread(out)}
    print(json.dumps({k: rec[k] for k in ("rc", "wall_s", "real_minus_none_validation")}, indent=1))
    for r in rows:
        last = (r["curve"] or [{}])[-1]
        print(f"{r['method']:<22} {r['state']:<12} conv={r['converged']} gain={r['last_gain']} gainF1={r['last_gain_minority']} "
              f"val acc={last.get('accuracy')} val mF1={last.get('minority_f1')}")
    prev = _previous()
    prev.setdefault("studies", {})[args.tag] = rec
    write_result(NAME, prev, markdown=table(prev), command=" ".join(["python", *sys.argv]))
    return rec


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="part", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--sizes", default="8,12,16")
    sp.add_argument("--threads", type=int, default=1)
    sp.add_argument("--clf-batch", type=int, default=128)
    sp.add_argument("--cfg-batch", type=int, default=64)
    st = sub.add_parser("study")
    st.add_argument("--tag", required=True)
    st.add_argument("--config", required=True)
    st.add_argument("--out", required=True)
    st.add_argument("--data-dir", default=None)
    st.add_argument("extra", nargs=argparse.REMAINDER, help="after --: flags for `python -m core experiment`")
    args = p.parse_args()
    {"speed": speed, "study": study}[args.part](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
