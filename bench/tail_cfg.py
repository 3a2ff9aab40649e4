"""Tail-aware CFG, side by side: plain CFG, uniform_classes, CBDM (cbdm_tau > 0), per-class w.

    flock /tmp/bench.lock .venv/bin/python bench/tail_cfg.py [--seeds 0,1,2] [--short 100] [--long 300]

Digits, exponential profile at ratio 50 (class 0, 1, 2 keep 2, 4, 6 training images); the
three smallest classes are reported alone. For each training seed:

* three CFG models (tiny preset) are trained: plain, ``uniform_classes``, ``cbdm_tau`` = τ;
  each is evaluated after the short training, then resumed to the long one;
* four methods are sampled (same sampler, same seeds): the three models at one w, and the
  plain model with per-class w (w_c = w·(n_max/n_c)^γ capped at w_max) — no new training;
* tail metrics: class-consistency (judge CNN), near-copy rate (pixel space, 5th-percentile
  rule calibrated on held-out real images), precision/recall (judge CNN features, k = 3, vs
  held-out real images);
* after the long training each method fills every class below ``--fill-target`` up to it
  (59 by default, the third-largest class: the study fills to the largest, which costs 3.4x
  the sampling on a CPU) and the same small classifier is trained on each filled set for the
  same number of optimizer steps (every filled set has the same size); minority F1 = mean F1
  of the three most reduced classes.

Paired verdicts (core.study.stats.paired) compare each method with plain CFG on the same seeds.
Intermediate results are kept in --work, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("IMBALANCE_LAB_OFFLINE", "1")  # no Inception download: the judge's features, named as such
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

TAIL = [0, 1, 2]
METRICS = [("consistency", "tail class-consistency"), ("near_copy_rate", "tail near-copy rate"), ("precision", "tail precision"),
           ("recall", "tail recall"), ("minority_f1", "classifier minority F1")]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--short", type=int, default=100, help="optimizer steps of the short training")
    p.add_argument("--long", type=int, default=300, help="optimizer steps of the long training")
    p.add_argument("--warmup", type=int, default=20, help="learning-rate warm-up steps (the default 200 would cover most of a short run)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--w", type=float, default=1.0, help="the paper's w for plain, uniform and CBDM, and the base of per-class w")
    p.add_argument("--w-gamma", type=float, default=0.5)
    p.add_argument("--w-max", type=float, default=7.5)
    p.add_argument("--tau", type=float, default=1.0, help="cbdm_tau")
    p.add_argument("--n-tail", type=int, default=16, help="images per tail class for the tail metrics")
    p.add_argument("--sampler-steps", type=int, default=10, help="DPM-Solver++ steps")
    p.add_argument("--clf-epochs", type=int, default=20)
    p.add_argument("--fill-target", type=int, default=59, help="classes below this count are filled up to it (59 = the third-largest class; every method fills the same number)")
    p.add_argument("--threads", type=int, default=1, help="torch threads; 1 because on a shared 2-core machine 2 threads measured 12x slower per step (oversubscription)")
    p.add_argument("--work", default=str(ROOT / "bench" / "out" / "tail_cfg"))
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--from-cache", action="store_true", help="only summarise the evaluations already in --work (e.g. of an interrupted run)")
    return p.parse_args()


def main() -> int:
    args = parse()
    torch.set_num_threads(args.threads)
    from bench.record import write_result
    from core.data.loading import DataConfig
    from core.metrics.judge import class_consistency, get_judge
    from core.metrics.generation import get_extractor
    from core.metrics.novelty import fill_scores, held_out_split
    from core.train.cfg_unet import CFGTrainConfig, train_cfg

    seeds = [int(s) for s in args.seeds.split(",")]
    data = DataConfig(dataset="digits", profile="exponential", ratio=50.0)
    train, held_out, source = held_out_split(data)
    judge = get_judge(data)
    extractor, note = get_extractor("auto", data)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    models = {"plain": {}, "uniform": {"uniform_classes": True}, "cbdm": {"cbdm_tau": args.tau}}
    methods = {"plain CFG": ("plain", {}), "uniform_classes": ("uniform", {}), f"CBDM τ={args.tau:g}": ("cbdm", {}),
               f"per-class w (γ={args.w_gamma:g}, ≤{args.w_max:g})": ("plain", {"w_gamma": args.w_gamma, "w_max": args.w_max})}
    rows, train_seconds = [], {m: [] for m in models}
    if args.from_cache:
        rows = [json.loads(f.read_text()) for f in sorted(work.glob("eval_*.json"))]
        seeds = sorted({r["seed"] for r in rows})
        for f in work.glob("*_seed*_*.trained"):
            mname, info = f.name.split("_seed")[0], json.loads(f.read_text())
            train_seconds[mname].append(info["seconds"] / max(1, info["steps"] - (args.short if f.name.endswith("_long.trained") else 0)))
    for seed in [] if args.from_cache else seeds:
        for length, steps in (("short", args.short), ("long", args.long)):
            for mname, extra in models.items():
                run = work / f"{mname}_seed{seed}"
                done = work / f"{mname}_seed{seed}_{length}.trained"
                if not done.exists():
                    cfg = CFGTrainConfig(data=data, preset="tiny", steps=steps, batch_size=args.batch_size, seed=seed, preview_every=0,
                                         checkpoint_every=0, log_every=50, device="cpu", warmup_steps=args.warmup,
                                         preview_per_class=1, preview_steps=1, **extra)
                    t0 = time.time()
                    train_cfg(cfg, run, resume=run.exists())
                    done.write_text(json.dumps({"seconds": time.time() - t0, "steps": steps}))
                info = json.loads(done.read_text())
                train_seconds[mname].append(info["seconds"] / max(1, info["steps"] - (args.short if length == "long" else 0)))
            for method, (mname, wkw) in methods.items():
                rows.append(evaluate(work, method, mname, wkw, seed, length, args, train, held_out, judge, extractor, data,
                                     class_consistency, fill_scores))
                print(json.dumps({k: rows[-1][k] for k in ("method", "seed", "length", "consistency", "near_copy_rate", "precision",
                                                             "recall", "minority_f1")}), flush=True)
    results = summarise(rows, methods, seeds, train_seconds, args, train, source, extractor, note, time.time() - t_all)
    md = markdown(results)
    print(md)
    if not args.no_write:
        write_result("tail_cfg", results, markdown=md, device="cpu")
    return 0


def evaluate(work, method, mname, wkw, seed, length, args, train, held_out, judge, extractor, data, class_consistency, fill_scores) -> dict:
    from core.generators.balance import balance
    from core.data.imageset import ImageSet
    from core.generators.cfg import CFGGenerator

    cache = work / f"eval_{mname}_{'pcw' if wkw else 'w'}_seed{seed}_{length}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    gen = CFGGenerator(work / f"{mname}_seed{seed}", w=args.w, sampler="dpm", steps=args.sampler_steps, device="cpu", **wkw)
    t0 = time.time()
    tail = ImageSet.concat([gen.generate(c, args.n_tail, seed=1000 + seed) for c in TAIL])
    sample_s = (time.time() - t0) / len(tail)
    sc = fill_scores(tail, train, held_out, extractor)
    per_class = {}
    for c in TAIL:
        name = train.classes[c]
        e = sc["per_class"][name]
        per_class[name] = {"n_train": e["n_train"], "consistency": class_consistency(judge, tail.of_class(c).images, c),
                           "near_copy_rate": e["near_copy_rate"], "median_nn_relative": e["median_nn_relative"],
                           "precision": e["precision"], "recall": e["recall"], "w": gen.class_w[c] if gen.class_w else args.w}
    row = {"method": method, "seed": seed, "length": length, "steps": args.short if length == "short" else args.long,
           "consistency": class_consistency(judge, tail.images, tail.labels), "near_copy_rate": sc["near_copy_rate"],
           "median_nn_relative": sc["median_nn_relative"], "heldout_rate": sc["heldout_rate"],
           "precision": float(np.mean([per_class[train.classes[c]]["precision"] for c in TAIL])),
           "recall": float(np.mean([per_class[train.classes[c]]["recall"] for c in TAIL])),
           "per_class": per_class, "sample_s_per_image": sample_s, "minority_f1": None}
    if length == "long":
        from core.train.classifier import ClassifierConfig, train_classifier

        filled = balance(train, gen, target=args.fill_target, seed=seed)
        ccfg = ClassifierConfig(data=data, arch="small", epochs=args.clf_epochs, batch_size=64, lr=0.05, weight_decay=5e-4,
                                warmup_epochs=1.0, eval_every=0, checkpoint_every=0, seed=seed, device="cpu")
        res = train_classifier(ccfg, work / f"clf_{mname}_{'pcw' if wkw else 'w'}_seed{seed}", train_set=filled)
        row.update(minority_f1=res["minority_f1"], accuracy=res["accuracy"], train_images=len(filled))
    cache.write_text(json.dumps(row))
    return row


def summarise(rows, methods, seeds, train_seconds, args, train, source, extractor, note, seconds) -> dict:
    from core.study.stats import paired, summary

    out = {"setup": {"dataset": "digits", "profile": "exponential", "ratio": 50, "train_counts": train.counts(),
                     "tail_classes": TAIL, "tail_train_counts": [train.counts()[c] for c in TAIL],
                     "held_out_source": {train.classes[c]: source[train.classes[c]] for c in TAIL}, "seeds": seeds,
                     "short_steps": args.short, "long_steps": args.long, "warmup": args.warmup, "batch_size": args.batch_size, "w": args.w,
                     "w_gamma": args.w_gamma, "w_max": args.w_max, "cbdm_tau": args.tau, "n_tail_per_class": args.n_tail,
                     "sampler": f"dpm {args.sampler_steps} steps", "classifier": f"small CNN, {args.clf_epochs} epochs, batch 64, on the train split filled to {args.fill_target} per class "
                                   f"(same set size and steps for every method)",
                     "features": extractor.label, "extractor_note": note,
                     "near_copy_rule": "pixel-space NN distance <= 5th percentile of held-out real images' NN distances (calibrated per class on one half)"},
           "seconds": round(seconds, 1),
           "train_seconds_per_step": {k: float(np.mean(v)) for k, v in train_seconds.items() if v},
           "rows": rows, "summary": {}, "paired_vs_plain": {}}
    for length in ("short", "long"):
        for method in methods:
            sel = [r for r in rows if r["method"] == method and r["length"] == length]
            out["summary"].setdefault(length, {})[method] = {k: summary([r[k] for r in sel]) for k, _ in METRICS}
            out["summary"][length][method]["per_class"] = {
                train.classes[c]: {k: summary([r["per_class"][train.classes[c]][k] for r in sel]) for k in ("consistency", "near_copy_rate", "precision", "recall")}
                for c in TAIL}
            if method == "plain CFG":
                continue
            ref = {r["seed"]: r for r in rows if r["method"] == "plain CFG" and r["length"] == length}
            out["paired_vs_plain"].setdefault(length, {})[method] = {
                k: paired({r["seed"]: r[k] for r in sel}, {s: x[k] for s, x in ref.items()}) for k, _ in METRICS}
    return out


def _f(s: dict) -> str:
    if s["mean"] is None:
        return "—"
    return f"{s['mean']:.2f} ± {s['std']:.2f}" if s["std"] is not None else f"{s['mean']:.2f}"


def _v(p: dict) -> str:
    # core.study.stats says better/worse for "method − plain > 0 / < 0"; here: higher/lower, since a lower near-copy rate is the good side
    word = {"better": "higher", "worse": "lower"}.get(p["verdict"], p["verdict"])
    return "—" if p["diff_mean"] is None else f"{p['diff_mean']:+.2f} ({word})"


def markdown(res: dict) -> str:
    s = res["setup"]
    lines = [f"Digits, exponential ratio 50 (train counts {s['train_counts']}); tail = classes {s['tail_classes']} with "
             f"{s['tail_train_counts']} training images. Seeds {s['seeds']}; tiny CFG, batch {s['batch_size']}, short = {s['short_steps']} "
             f"steps, long = {s['long_steps']} steps (lr 1e-3 after {s['warmup']} warm-up steps); w = {s['w']:g}; CBDM τ = {s['cbdm_tau']:g} (y' from the train frequencies); "
             f"per-class w = w·(n_max/n_c)^{s['w_gamma']:g} ≤ {s['w_max']:g}; {s['n_tail_per_class']} images per tail class, {s['sampler']}. "
             f"Precision/recall on {s['features']}, k = 3, against held-out real images. Classifier: {s['classifier']}. "
             f"Mean ± std over seeds; paired differences vs plain CFG with their verdict (95 % t interval). Whole run {res['seconds']:.0f} s.", ""]
    for length in ("short", "long"):
        lines += [f"**{length} training** ({s[length + '_steps']} steps)", "",
                  "| method | " + " | ".join(h for _, h in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        for method, m in res["summary"][length].items():
            lines.append(f"| {method} | " + " | ".join(_f(m[k]) for k, _ in METRICS) + " |")
        lines += ["", "| vs plain CFG (paired) | " + " | ".join(h for _, h in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        for method, p in res["paired_vs_plain"][length].items():
            lines.append(f"| {method} | " + " | ".join(_v(p[k]) for k, _ in METRICS) + " |")
        lines.append("")
    lines += ["Per tail class after the long training (mean over seeds): consistency / near-copy rate / precision / recall", "",
              "| method | " + " | ".join(f"class {c} ({n} imgs)" for c, n in zip(s["tail_classes"], s["tail_train_counts"])) + " |",
              "|---|" + "---|" * len(s["tail_classes"])]
    for method, m in res["summary"]["long"].items():
        cells = []
        for c in s["tail_classes"]:
            pc = m["per_class"][str(c)]
            cells.append(" / ".join("—" if pc[k]["mean"] is None else f"{pc[k]['mean']:.2f}" for k in ("consistency", "near_copy_rate", "precision", "recall")))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    t = res["train_seconds_per_step"]
    lines += ["", "Training wall-clock per step (s): " + ", ".join(f"{k} {v:.3f}" for k, v in t.items())
              + (f"; CBDM costs {t['cbdm'] / t['plain']:.2f}× plain" if "cbdm" in t and "plain" in t else "") + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
