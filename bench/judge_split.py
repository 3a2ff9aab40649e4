"""How much the filled-set table moves when the judge CNN stops training on the images it is scored against.

    flock /tmp/lab-heavy.lock .venv/bin/python bench/judge_split.py [--seed 0] [--per-class 30] [--extra-seeds 1,2]

Digits, the paper's profile (class i keeps (i+1)/10 of its images), one seed. The data is the
study's with ``judge_per_class`` = 30: 30 images per class are reserved before the profile, the
profile draws from the rest (the pool), the FD reference is the pool, the held-out reals are
the images the profile dropped (or the test split for a class that lost fewer than 10).

The oversample, Mixup and CutMix fills (λ = 0.6, as in the study presets) are built once
(core.generators.registry.build_generator + core.generators.balance.balance, as core.study's fill
cells do) and scored twice, with the same code the study uses:

* ``full``: the judge trained on the full train split (``judge_per_class`` = 0, today's
  default): it has seen the FD reference, the held-out reals and the classifier's subset;
* ``split``: the judge trained on the 300 reserved images only, which none of those contain.

Only the feature extractor differs, so every delta is the judge's doing. Per fill: FD (judge
CNN features) of the filled set against the pool (core.metrics.generation.generation_metrics),
KD, precision and recall of the generated images against held-out reals, and the near-copy
rates (core.metrics.novelty.fill_scores: ``near_copy_rate`` is pixel space, so it cannot move;
``feature_near_copy_rate`` is the same rule on judge features). Two real references put FD on
each judge's scale: the unfilled imbalanced set (``none``) and the test split (``test``, real
images neither judge saw). The table is ``--seed``; the deltas of ``--extra-seeds`` (other
subsets and fills, the same two judges) are recorded beside it, to show the seed-to-seed spread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("IMBALANCE_LAB_OFFLINE", "1")  # no Inception download: the judge's features, named as such
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

FILLS = ["oversample", "mixup", "cutmix"]
PARAMS = {"mixup": {"lam": 0.6}, "cutmix": {"lam": 0.6}}  # the presets' method_params
COLUMNS = ["fd", "kid", "precision", "recall", "near_copy_rate", "feature_near_copy_rate"]
DELTAS = ["fd", "precision", "recall", "near_copy_rate", "feature_near_copy_rate"]


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="the subset seed and the fills' seed (the table)")
    p.add_argument("--extra-seeds", default="1,2", help="further subset/fill seeds whose deltas are recorded too (same judges), '' for none")
    p.add_argument("--per-class", type=int, default=30, help="judge_per_class of the split judge and of the data")
    p.add_argument("--out", default=None, help="results folder (default bench/results)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    # fresh judges, trained here (timed), not whatever models/judges holds
    tmp = tempfile.mkdtemp(prefix="judge-split-bench-")
    os.environ["IMBALANCE_LAB_MODELS"] = os.path.join(tmp, "models")
    os.environ["IMBALANCE_LAB_CACHE"] = os.path.join(tmp, "cache")  # reference statistics of these judges only
    device = "cpu"
    t0 = time.perf_counter()
    out = {}  # seed -> measure(); the judges are trained on the first and read from their cache after
    for seed in [args.seed, *(int(x) for x in args.extra_seeds.split(",") if x.strip())]:
        out[seed] = measure(args, seed, device)
    split_info, judges, tables, deltas = out[args.seed]
    seconds = time.perf_counter() - t0
    extra = {s: {fill: {c: d[fill][c] for c in ("fd_over_test", "precision", "recall", "feature_near_copy_rate")} for fill in FILLS}
             for s, (_, _, _, d) in out.items() if s != args.seed}
    return report(args, split_info, judges, tables, deltas, extra, seconds, device)


def measure(args, seed: int, device: str):
    """(split counts, judges, per-judge tables, deltas split − full) for one subset/fill seed."""
    from core.generators.balance import balance
    from core.data.loading import DataConfig, load_dataset
    from core.data.profiles import apply_profile, dropped_by_profile
    from core.generators.registry import build_generator
    from core.metrics.judge import get_judge
    from core.metrics.generation import generation_metrics, get_extractor
    from core.metrics.novelty import fill_scores, held_out_from

    data = DataConfig(dataset="digits", profile="paper", judge_per_class=args.per_class, subset_seed=seed)
    ds = load_dataset(data)
    imbalanced = apply_profile(ds.train, data)
    held_out, source = held_out_from(dropped_by_profile(ds.train, data))
    fills = {}
    for fill in FILLS:
        full = balance(imbalanced, build_generator(fill, imbalanced, **PARAMS.get(fill, {})), None, seed=seed)
        fills[fill] = (full, full.subset(torch.arange(len(imbalanced), len(full))))
    split_info = {"judge_per_class": args.per_class, "judge_counts": ds.judge.counts(), "pool_counts": ds.train.counts(),
                  "kept_counts": imbalanced.counts(), "held_out_counts": held_out.counts(), "test_counts": ds.test.counts(),
                  "held_out_source": source, "full_train_counts": [j + p for j, p in zip(ds.judge.counts(), ds.train.counts())]}
    tables, judges = {}, {}
    for name, k in (("full", 0), ("split", args.per_class)):
        t = time.perf_counter()
        ex, note = get_extractor("judge", DataConfig.from_dict({**data.to_dict(), "judge_per_class": k}), device)
        info = get_judge(DataConfig.from_dict({**data.to_dict(), "judge_per_class": k}), device=device).info  # cached: no retraining
        judges[name] = {"train_source": info["train_source"], "train_images": info["train_images"], "epochs": info["epochs"],
                        "test_accuracy": info["test_accuracy"], "note": note, "train_s": round(time.perf_counter() - t, 1)}
        rows = {}
        for ref_name, ref_set in (("none", imbalanced), ("test", ds.test)):
            g = generation_metrics(ex, ds.train, f"{ds.name}-pool{args.per_class}", ref_set, seed=seed)
            rows[ref_name] = {"fd": g[ex.key], "kid": g["kid"]}
        for fill, (full, part) in fills.items():
            g = generation_metrics(ex, ds.train, f"{ds.name}-pool{args.per_class}", full, seed=seed)
            s = fill_scores(part, imbalanced, held_out, ex, seed=seed)
            rows[fill] = {"fd": g[ex.key], "kid": g["kid"], "n_generated": len(part),
                          **{c: s[c] for c in ("precision", "recall", "near_copy_rate", "feature_near_copy_rate")}}
        for fill in FILLS:  # FD on each judge's own scale: the fill's FD over the unseen real test split's
            rows[fill]["fd_over_test"] = rows[fill]["fd"] / rows["test"]["fd"]
        tables[name] = rows
    deltas = {fill: {c: tables["split"][fill][c] - tables["full"][fill][c] for c in DELTAS + ["fd_over_test"]} for fill in FILLS}
    for ref in ("none", "test"):
        deltas[ref] = {"fd": tables["split"][ref]["fd"] - tables["full"][ref]["fd"]}
    return split_info, judges, tables, deltas


def report(args, split_info, judges, tables, deltas, extra, seconds, device):
    from bench.record import write_result

    def fmt(v):
        return "–" if v is None else f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"

    lines = ["| set | judge | FD (judge CNN) | FD / FD(test) | KD | precision | recall | near-copy (pixels) | near-copy (judge features) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for fill in ["none", "test", *FILLS]:
        for name in ("full", "split", "delta"):
            r = deltas[fill] if name == "delta" else tables[name][fill]
            label = {"full": "full train", "split": f"judge split ({args.per_class}/class)", "delta": "**Δ split − full**"}[name]
            lines.append(f"| {fill} | {label} | " + " | ".join(fmt(r.get(c)) for c in ("fd", "fd_over_test", "kid", "precision", "recall",
                                                                                       "near_copy_rate", "feature_near_copy_rate")) + " |")
    results = {"seed": args.seed, "profile": "paper", "split": split_info, "judges": judges, "tables": tables, "deltas": deltas,
               "extra_seeds": {str(s): d for s, d in extra.items()}, "seconds": round(seconds, 1)}
    for c in ("precision", "fd_over_test"):  # the spread of the deltas over every seed run, per fill
        results[f"{c}_delta_range"] = {fill: [min(v), max(v)] for fill in FILLS
                                       for v in [[deltas[fill][c], *(e[fill][c] for e in extra.values())]]}
    path = write_result("judge_split", results, markdown="\n".join(lines), device=device, out_dir=Path(args.out) if args.out else None)
    print("\n".join(lines))
    print(f"judges: {judges}")
    print(f"wrote {path} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
