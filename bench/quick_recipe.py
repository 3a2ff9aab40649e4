"""Size the quick study (issue #17 item 6): measure one candidate recipe's parts on this CPU.

    flock /tmp/lab-heavy.lock .venv/bin/python bench/quick_recipe.py --tag T --part gen --seeds 0 --cfg-steps 500,1000
    flock /tmp/lab-heavy.lock .venv/bin/python bench/quick_recipe.py --tag T --part clf --seeds 0 --clf-steps 300
    flock /tmp/lab-heavy.lock .venv/bin/python bench/quick_recipe.py --part speed --threads 1   # steps/s of each network
    .venv/bin/python bench/quick_recipe.py --part summary --tag NAME --gen-tag T --clf-tag T2 --cfg-steps 700 --clf-steps 500 \
        --check-dir bench/out/qr_check     # gate per seed, the convergence rule, the estimated study wall time

Digits, 8x8 (native) or 16x16. The unbiased judge is emulated as issue #17 item 4 asks: 30 images
per class are taken out of digits' train split by a fixed permutation *before* the profile; the
judge (core.metrics.judge.train_judge, SmallCNN) trains on those only, and the profile is applied to the
rest (the "pool"). Near-copies and precision are measured against the pool's profile-dropped
images (core.metrics.novelty.held_out_from), as the study's fill rows do.

``--part gen``: per seed, the CFG model (core.train.cfg_unet.train_cfg on the seed's imbalanced pool;
``prepare`` is pointed at it) is trained to each step count of ``--cfg-steps`` in turn (resuming:
the LR is constant after warm-up, so the 500-step state of a 1000-step run is a 500-step run),
and at each one every class is filled to the largest with core.generators.balance.balance and
CFGGenerator at each w. Gate figures per w (issue #17 item 2): tail = the 3 classes given the
most generated images; tail consistency = share of their images the judge classifies as their
label; precision = fill_scores' "precision" (judge features, k = 3, vs held-out reals); tail
near-copy rate = near-copies among the tail images (fill_scores' per-class rates, pixel space).
Gate: consistency >= 0.8, precision >= 0.5, tail near-copy rate <= 0.2.

``--part clf``: per seed, `none` and `oversample` classifiers (core.train.classifier, `small`)
at S/2 and S steps (separate runs, each with its own warm-up and cosine), the convergence rule
being "S/2 -> S gains < 1 accuracy point, mean over seeds".

``--part summary`` reads the runs back: the gate per seed and w at the last ``--cfg-steps``, the rule at
``--clf-steps`` S, and the estimated wall time of the study at ``--study-seeds`` seeds on ``--lanes`` lanes:
fixed (process start, dataset, judge) + seeds × (CFG train + 2 CFG fill cells + 4 real fill cells + 10
classifier cells of 1.875 S steps, the budget curve's separate S/8, S/4, S/2, S runs) / lanes. With
``--check-dir`` (a real study run of the recipe, bench/quick_recipe_check.toml) the fill cells' seconds
come from that run, and the formula is checked against its measured time.

Results are merged into bench/results/quick_recipe.json: results.runs["<tag>/<part>/seeds<k>"] and
results.summaries[<tag>].
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("IMBALANCE_LAB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

JUDGE_PER_CLASS = 30
GATE = {"tail_consistency": 0.8, "precision": 0.5, "near_copy_rate": 0.2}
RESULT = ROOT / "bench" / "results" / "quick_recipe.json"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tag", default="default", help="name of this recipe's entry in the results file")
    p.add_argument("--part", choices=["gen", "clf", "speed", "summary"], default="gen")
    p.add_argument("--check-dir", default=None, help="summary: a study folder run with the recipe (cell durations are read from it)")
    p.add_argument("--study-seeds", type=int, default=5, help="summary: seeds of the estimated study")
    p.add_argument("--lanes", type=int, default=2, help="summary: parallel CPU lanes of the estimated study")
    p.add_argument("--gen-tag", default=None, help="summary: the tag of the recipe's --part gen runs")
    p.add_argument("--clf-tag", default=None, help="summary: the tag of the recipe's --part clf runs")
    p.add_argument("--seeds", default="0")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--image-size", type=int, default=8)
    p.add_argument("--profile", default="paper", help="paper | exponential")
    p.add_argument("--ratio", type=float, default=50.0, help="exponential profile's max/min")
    p.add_argument("--judge-epochs", type=int, default=None, help="None = train_judge's default")
    # CFG
    p.add_argument("--cfg-preset", default="tiny")
    p.add_argument("--cfg-steps", default="1000", help="comma-separated step counts, evaluated in turn (one resumed run)")
    p.add_argument("--cfg-batch", type=int, default=64)
    p.add_argument("--cfg-lr", type=float, default=None)
    p.add_argument("--cfg-warmup", type=int, default=50)
    p.add_argument("--uniform-classes", action="store_true")
    p.add_argument("--cbdm-tau", type=float, default=0.0)
    p.add_argument("--sampler-steps", type=int, default=8)
    p.add_argument("--ws", default="0.1,7.5")
    # classifier
    p.add_argument("--clf-steps", type=int, default=400, help="S; runs at S/2 and S")
    p.add_argument("--clf-fractions", default="0.5,1")
    p.add_argument("--clf-batch", type=int, default=64)
    p.add_argument("--clf-lr", type=float, default=0.05)
    p.add_argument("--clf-warmup-frac", type=float, default=0.1, help="warm-up steps = this × the run's steps")
    p.add_argument("--methods", default="none,oversample")
    p.add_argument("--work", default=str(ROOT / "bench" / "out" / "quick_recipe"))
    p.add_argument("--no-write", action="store_true")
    return p.parse_args()


# ------------------------------------------------------------------------------ data
def data_cfg(args, seed: int):
    from core.data.loading import DataConfig

    return DataConfig(dataset="digits", image_size=args.image_size, profile=args.profile, ratio=args.ratio, subset_seed=seed)


def split_judge(ds):
    """(judge split, pool): JUDGE_PER_CLASS images of each class by a fixed permutation, and the rest."""
    keep_j = []
    for c in range(ds.train.num_classes):
        idx = torch.nonzero(ds.train.labels == c).flatten()
        g = torch.Generator().manual_seed(777_000 + c)
        keep_j.append(idx[torch.randperm(len(idx), generator=g)[:JUDGE_PER_CLASS]])
    j = torch.sort(torch.cat(keep_j)).values
    mask = torch.ones(len(ds.train), dtype=torch.bool)
    mask[j] = False
    return ds.train.subset(j), ds.train.subset(torch.nonzero(mask).flatten())


class Setup:
    def __init__(self, args):
        from core.data.loading import DataConfig, load_dataset

        self.args = args
        full = load_dataset(DataConfig(dataset="digits", image_size=args.image_size))
        self.judge_set, self.pool = split_judge(full)
        self.ds = replace(full, train=self.pool)  # the study's dataset: the pool is "train"
        self._judge = None
        self.judge_seconds = None

    def seed_sets(self, seed: int):
        from core.data.profiles import apply_profile, dropped_by_profile
        from core.metrics.novelty import held_out_from

        cfg = data_cfg(self.args, seed)
        imb = apply_profile(self.pool, cfg)
        held_out, _ = held_out_from(dropped_by_profile(self.pool, cfg))
        return cfg, imb, held_out

    def judge(self):
        if self._judge is None:
            from core.metrics.judge import train_judge

            t0 = time.time()
            self._judge = train_judge(self.judge_set, self.ds.test, epochs=self.args.judge_epochs, device="cpu")
            self.judge_seconds = time.time() - t0
        return self._judge

    def extractor(self):
        from core.metrics.generation import Extractor

        j = self.judge()
        return Extractor("judge", "fd_judge", "FD (judge CNN features)", "KD (judge CNN features)", "judge-quick-recipe", j.features, 512)


# ------------------------------------------------------------------------------ gate
def gate_figures(setup: Setup, part, imbalanced, held_out, seed: int) -> dict:
    from core.metrics.novelty import fill_scores

    counts = part.counts()
    tail = sorted(sorted(range(len(counts)), key=lambda c: (-counts[c], c))[:3])
    judge = setup.judge()
    mask = torch.isin(part.labels, torch.tensor(tail))
    pred = judge.predict(part.images[mask])
    consistency = float((pred == part.labels[mask]).float().mean())
    per_class_cons = {part.classes[c]: float((judge.predict(part.of_class(c).images) == c).float().mean()) for c in tail}
    t0 = time.time()
    fs = fill_scores(part, imbalanced, held_out, setup.extractor(), seed=seed, flips=False)
    nc_n = sum((fs["per_class"][part.classes[c]]["near_copy_rate"] or 0.0) * counts[c] for c in tail)
    tail_nc = nc_n / max(1, sum(counts[c] for c in tail))
    out = {"tail": tail, "tail_consistency": consistency, "precision": fs["precision"], "recall": fs["recall"],
           "near_copy_rate": tail_nc, "near_copy_rate_all": fs["near_copy_rate"], "heldout_rate": fs["heldout_rate"],
           "tail_per_class": {part.classes[c]: {"consistency": per_class_cons[part.classes[c]],
                                                "near_copy_rate": fs["per_class"][part.classes[c]]["near_copy_rate"],
                                                "n": counts[c], "n_train": fs["per_class"][part.classes[c]]["n_train"]} for c in tail},
           "scores_seconds": time.time() - t0}
    out["passed"] = bool(consistency >= GATE["tail_consistency"] and (fs["precision"] or 0) >= GATE["precision"]
                         and tail_nc <= GATE["near_copy_rate"])
    return out


# ------------------------------------------------------------------------------ parts
def run_gen(args, setup: Setup, seed: int, work: Path) -> dict:
    import core.train.cfg_unet as cfg_mod
    from core.generators.balance import balance
    from core.generators.cfg import CFGGenerator
    from core.train.cfg_unet import CFGTrainConfig, train_cfg

    dcfg, imb, held_out = setup.seed_sets(seed)
    cfg_mod.prepare = lambda _cfg: (setup.ds, imb)  # the CFG model trains on the seed's imbalanced pool
    run_dir = work / f"seed{seed}" / "cfg"
    shutil.rmtree(run_dir, ignore_errors=True)
    out = {"imbalanced_counts": imb.counts(), "held_out": len(held_out), "by_steps": []}
    t_train = 0.0
    for steps in [int(s) for s in args.cfg_steps.split(",")]:
        tc = CFGTrainConfig.from_dict({"data": dcfg.to_dict(), "preset": args.cfg_preset, "steps": steps, "batch_size": args.cfg_batch,
                                       "lr": args.cfg_lr, "warmup_steps": args.cfg_warmup, "uniform_classes": args.uniform_classes,
                                       "cbdm_tau": args.cbdm_tau, "seed": seed, "device": "cpu", "preview_every": 0,
                                       "checkpoint_every": 0, "log_every": 50, "preview_per_class": 1, "preview_steps": 2})
        t0 = time.time()
        train_cfg(tc, run_dir, resume=(run_dir / "config.json").exists())
        t_train += time.time() - t0
        entry = {"cfg_steps": steps, "cfg_train_seconds": t_train, "fills": {}}
        for w in [float(x) for x in args.ws.split(",")]:
            gen = CFGGenerator(run_dir, w=w, sampler="dpm", steps=args.sampler_steps, device="cpu", classes=imb.classes,
                               channels=imb.channels, image_size=imb.image_size)
            t0 = time.time()
            full = balance(imb, gen, None, seed=seed)
            fill_s = time.time() - t0
            part = full.subset(torch.arange(len(imb), len(full)))
            g = gate_figures(setup, part, imb, held_out, seed)
            entry["fills"][f"{w:g}"] = {"fill_seconds": fill_s, "n_generated": len(part), **g}
            print(f"seed {seed} steps {steps} w {w:g}: cons {g['tail_consistency']:.2f} prec {g['precision']:.2f} "
                  f"nc {g['near_copy_rate']:.2f} passed {g['passed']}  (train {t_train:.0f} s, fill {fill_s:.1f} s)", flush=True)
        out["by_steps"].append(entry)
    return out


def real_fill_seconds(setup: Setup, seed: int) -> dict:
    """Seconds of the real-image fills (oversample, mixup, cutmix) + their fill_scores, as the study's fill cells."""
    from core.generators.balance import balanced_train_set
    from core.metrics.novelty import fill_scores

    _, imb, held_out = setup.seed_sets(seed)
    out = {}
    for m, params in [("oversample", {}), ("mixup", {"lam": 0.6}), ("cutmix", {"lam": 0.6})]:
        t0 = time.time()
        full = balanced_train_set(imb, m, params, None, seed)
        part = full.subset(torch.arange(len(imb), len(full)))
        fill_scores(part, imb, held_out, setup.extractor(), seed=seed)
        out[m] = time.time() - t0
    return out


def run_clf(args, setup: Setup, seed: int, work: Path) -> dict:
    from core.generators.balance import balanced_train_set
    from core.train.classifier import ClassifierConfig, train_classifier

    dcfg, imb, _ = setup.seed_sets(seed)
    out = {}
    for m in args.methods.split(","):
        train = balanced_train_set(imb, m, {}, None, seed)
        rows = []
        for f in [float(x) for x in args.clf_fractions.split(",")]:
            steps = max(1, int(round(args.clf_steps * f)))
            cc = ClassifierConfig(data=dcfg, arch="small", steps=steps, batch_size=args.clf_batch, lr=args.clf_lr, weight_decay=5e-4,
                                  warmup_steps=max(1, int(round(args.clf_warmup_frac * steps))), eval_every=0, checkpoint_every=0,
                                  seed=seed, device="cpu")
            d = Path(tempfile.mkdtemp(dir=work))
            t0 = time.time()
            res = train_classifier(cc, d / "run", train_set=train, dataset=setup.ds,
                                   train_set_info={"balance_method": m, "balance_params": {}, "balance_target": None})
            sec = time.time() - t0
            shutil.rmtree(d, ignore_errors=True)
            rows.append({"steps": steps, "accuracy": res["accuracy"], "minority_f1": res.get("minority_f1"), "seconds": sec,
                         "train_size": len(train)})
            print(f"seed {seed} {m} {steps} steps: acc {res['accuracy']:.4f} ({sec:.1f} s)", flush=True)
        out[m] = rows
    return out


def run_speed(args, setup: Setup) -> dict:
    """Steps/s of each network alone at --threads: the CFG UNet, the classifier, the sampler."""
    from core.nets.resnet import build_classifier
    from core.nets.unet import build_unet

    s = args.image_size
    out = {"threads": torch.get_num_threads()}
    unet = build_unet(args.cfg_preset, 10, 1, s)
    opt = torch.optim.AdamW(unet.parameters(), 1e-3)
    x, t, y = torch.randn(args.cfg_batch, 1, s, s), torch.randint(0, 1000, (args.cfg_batch,)), torch.randint(0, 11, (args.cfg_batch,))

    out["cfg_train_steps_per_s"] = _rate(train_step(opt, lambda: (unet(x, t, class_labels=y).sample - x).pow(2).mean()))
    unet.eval()
    xs, ts, ys = torch.randn(128, 1, s, s), torch.randint(0, 1000, (128,)), torch.randint(0, 11, (128,))
    with torch.no_grad():
        out["unet_forward_128_per_s"] = _rate(lambda: unet(xs, ts, class_labels=ys))
    net = build_classifier("small", 10, 1)
    o2 = torch.optim.SGD(net.parameters(), 0.05, momentum=0.9)
    xc, yc = torch.randn(args.clf_batch, 1, s, s), torch.randint(0, 10, (args.clf_batch,))

    out["clf_steps_per_s"] = _rate(train_step(o2, lambda: torch.nn.functional.cross_entropy(net(xc), yc)))
    print(json.dumps(out), flush=True)
    return out


def train_step(opt, loss_fn):
    """One optimizer step of ``loss_fn()`` as a closure, for timing a bare network."""
    def step():
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def _rate(fn, warm: int = 5, secs: float = 6.0) -> float:
    for _ in range(warm):
        fn()
    n, t0 = 0, time.time()
    while time.time() - t0 < secs:
        fn()
        n += 1
    return n / (time.time() - t0)


# ------------------------------------------------------------------------------ summary
def _runs(runs: dict, tag: str, part: str) -> list[dict]:
    return [v for k, v in runs.items() if k.startswith(f"{tag}/{part}/")]


def check_cells(folder: Path) -> dict:
    """Durations of a finished study's cells from its files (first to last write of each cell folder), and run_study's seconds."""
    lanes = {cid: c.get("device") for cid, c in json.loads((folder / "status.json").read_text())["cells"].items()}
    rows = {}
    for d in sorted((folder / "cells").iterdir()):
        t = [f.stat().st_mtime for f in d.rglob("*") if f.is_file()]
        if t:
            rows[d.name] = (min(t), max(t))
    # A cell that writes one file (a fill) has no start time of its own: it started when the previous cell of its lane
    # ended (cfg-train cells end on their own run folder's last write, not kept under cells/). Medians per kind absorb
    # the odd wait for a dependency.
    ends = sorted((b, cid) for cid, (_, b) in rows.items() if not cid.startswith("cfg-train"))
    cfg_end = {f"cfg-train__{d.name}": max(f.stat().st_mtime for f in d.rglob("*") if f.is_file()) for d in (folder / "cfg").iterdir()}
    last: dict[str, float] = {}
    first = min(a for a, _ in rows.values())
    dur = {}
    for b, cid in sorted(ends + [(t, cid) for cid, t in cfg_end.items()]):
        lane = lanes.get(cid)
        a = rows[cid][0] if not cid.startswith("cfg-train") and rows[cid][1] - rows[cid][0] > 0.5 else last.get(lane, first)
        dur[cid] = b - a
        last[lane] = b
    cfg_runs = {d.name: json.loads((d / "metrics.jsonl").read_text().splitlines()[-1])["time"] - json.loads((d / "metrics.jsonl").read_text().splitlines()[0])["time"]
                for d in sorted((folder / "cfg").iterdir()) if (d / "metrics.jsonl").exists()}
    res = json.loads((folder / "results.json").read_text())
    kinds: dict[str, list[float]] = {}
    for cid, v in dur.items():
        kind = "cfg_train" if cid.startswith("cfg-train") else "posthoc" if "posthoc" in cid else "classifier" if cid.startswith("clf__") \
            else "cfg_fill" if cid.startswith("fill__cfg") else "real_fill" if cid.startswith("fill__") else "other"
        kinds.setdefault(kind, []).append(v)
    return {"study_seconds": res["seconds"], "seeds": len({c.rsplit("seed", 1)[1] for c in rows}), "state": res["state"], "cells": res["cells"],
            "cfg_train_seconds_25_to_end": cfg_runs, "median_cell_seconds": {k: float(np.median(v)) for k, v in kinds.items()},
            "accuracy": {r["method"]: r["accuracy"]["mean"] for r in res["rows"]}}


def summary(args, runs: dict) -> dict:
    """The recipe's figures from the measured runs, and the estimated wall time of the full study."""
    gen = [s for v in _runs(runs, args.gen_tag, "gen") for s in v["seeds"].items()]
    clf = [s for v in _runs(runs, args.clf_tag, "clf") for s in v["seeds"].items()]
    steps, S = int(args.cfg_steps.split(",")[-1]), args.clf_steps
    gates, t_train, t_fill = {}, [], []
    for seed, d in sorted(gen, key=lambda x: x[0]):
        e = next(e for e in d["by_steps"] if e["cfg_steps"] == steps)
        t_train.append(e["cfg_train_seconds"])  # cumulative: the seconds to reach `steps` from scratch
        t_fill += [f["fill_seconds"] + f["scores_seconds"] for f in e["fills"].values()]
        gates[seed] = {w: {k: f[k] for k in ("tail_consistency", "precision", "near_copy_rate", "passed")} for w, f in e["fills"].items()}
    acc, per_step = {}, []
    for seed, d in sorted(clf, key=lambda x: x[0]):
        for m, rows in d.items():
            by = {r["steps"]: r for r in rows}
            if S in by and S // 2 in by:
                acc.setdefault(m, {})[seed] = {"half": by[S // 2]["accuracy"], "full": by[S]["accuracy"]}
            per_step += [r["seconds"] / r["steps"] for r in rows if r["steps"] >= 200]
    rule = {m: {"mean_half": float(np.mean([v["half"] for v in a.values()])) * 100, "mean_full": float(np.mean([v["full"] for v in a.values()])) * 100,
                "gain_points": float(np.mean([v["full"] - v["half"] for v in a.values()])) * 100, "seeds": len(a)} for m, a in acc.items()}
    for r in rule.values():
        r["converged"] = r["gain_points"] < 1.0
    chk = check_cells(Path(args.check_dir)) if args.check_dir else None
    sec_step = float(np.median(per_step))
    clf_cell = 1.875 * S * sec_step + 4 * 0.3  # the curve's 4 separate runs (S/8 + S/4 + S/2 + S = 1.875 S steps), ~0.3 s fixed each
    cfg_fill = chk["median_cell_seconds"]["cfg_fill"] if chk else float(np.mean(t_fill)) + 2.0
    real_fill = chk["median_cell_seconds"]["real_fill"] if chk else 2.0
    per_seed = float(np.mean(t_train)) + 2 * cfg_fill + 4 * real_fill + 10 * clf_cell
    judge = float(np.mean([v["judge"]["seconds"] for v in _runs(runs, args.gen_tag, "gen")]))
    fixed = 15.0 + judge  # process start, dataset, judge + extractor once
    est = {"lane_seconds_per_seed": {"cfg_train": float(np.mean(t_train)), "cfg_fills": 2 * cfg_fill, "real_fills": 4 * real_fill,
                                     "classifier_cells": 10 * clf_cell},
           "classifier_seconds_per_step": sec_step, "fixed_seconds": fixed, "lanes": args.lanes, "seeds": args.study_seeds}
    est["total_seconds"] = fixed + args.study_seeds * per_seed / args.lanes
    if chk:  # the same formula for the checked study (its classifier ran 1.875 S steps once per cell)
        pred = fixed + chk["seeds"] * per_seed / args.lanes
        est["check"] = {"predicted_seconds": pred, "measured_study_seconds": chk["study_seconds"], "ratio": chk["study_seconds"] / pred}
        est["total_seconds_scaled_by_check"] = est["total_seconds"] * max(1.0, est["check"]["ratio"])
    return {"cfg_steps": steps, "clf_steps": S, "gate": gates, "convergence": rule, "estimate": est, "check_study": chk}


# ------------------------------------------------------------------------------ main
def recipe(args) -> dict:
    return {k: getattr(args, k) for k in ("image_size", "profile", "ratio", "judge_epochs", "cfg_preset", "cfg_batch", "cfg_lr",
                                          "cfg_warmup", "uniform_classes", "cbdm_tau", "sampler_steps", "ws", "clf_steps",
                                          "clf_fractions", "clf_batch", "clf_lr", "clf_warmup_frac", "threads")}


def main() -> int:
    args = parse()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    work = Path(args.work) / args.tag
    work.mkdir(parents=True, exist_ok=True)
    setup = Setup(args)
    res: dict = {"recipe": recipe(args), "part": args.part}
    t_all = time.time()
    if args.part == "summary":
        runs = json.loads(RESULT.read_text())["results"]["runs"]
        out = summary(args, runs)
        print(json.dumps(out, indent=1, default=float))
        if not args.no_write:
            from bench.record import write_result

            old = json.loads(RESULT.read_text())["results"]
            sums = old.get("summaries", {})
            sums[args.tag] = {**out, "command": " ".join([Path(sys.executable).name, *sys.argv])}
            write_result("quick_recipe", {**old, "summaries": sums})
        return 0
    if args.part == "speed":
        res["speed"] = run_speed(args, setup)
    else:
        j = setup.judge()
        res["judge"] = {"seconds": setup.judge_seconds, "test_accuracy": j.info.get("test_accuracy"), "train_images": len(setup.judge_set),
                        "epochs": j.info.get("epochs"), "pool": len(setup.pool)}
        print(f"judge: {setup.judge_seconds:.1f} s, test accuracy {j.info.get('test_accuracy'):.4f}", flush=True)
        res["seeds"] = {}
        for seed in [int(s) for s in args.seeds.split(",")]:
            if args.part == "gen":
                res["seeds"][str(seed)] = {**run_gen(args, setup, seed, work), "real_fill_seconds": real_fill_seconds(setup, seed)}
            else:
                res["seeds"][str(seed)] = run_clf(args, setup, seed, work)
    res["seconds"] = time.time() - t_all
    if not args.no_write:
        import fcntl

        from bench.record import write_result

        with open(str(RESULT) + ".lock", "w") as lock:  # two lanes of one measurement may finish together
            fcntl.flock(lock, fcntl.LOCK_EX)
            old = json.loads(RESULT.read_text())["results"] if RESULT.exists() else {}
            runs = old.get("runs", {})
            runs[f"{args.tag}/{args.part}/seeds{args.seeds}"] = {**res, "command": " ".join([Path(sys.executable).name, *sys.argv]),
                                                                 "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            write_result("quick_recipe", {**old, "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
