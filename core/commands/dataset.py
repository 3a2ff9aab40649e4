"""``python -m core dataset``: load a dataset, apply a profile, print the counts."""

from __future__ import annotations

import json

from core.commands.data_flags import add_data_arguments, add_json_argument, add_overwrite_argument, check_out, data_config
from core.commands.config_file import add_config_argument
from core.data.loading import prepare

HELP = "Load a dataset, apply an imbalance profile and print per-class counts."


def add_arguments(p) -> None:
    add_data_arguments(p)
    add_json_argument(p, "the counts, instead of a table,")
    p.add_argument("--export", default=None, metavar="DIR", help="also write the chosen split (after the profile) as PNGs in class sub-folders NNN_name, plus samples.npz")
    p.add_argument("--split", default="train", choices=["train", "test"], help="which split --export writes (train: after the profile)")
    add_overwrite_argument(p)
    add_config_argument(p)


def run(args) -> int:
    cfg = data_config(args)
    if args.export:
        check_out(args.export, args.overwrite, "--export")
    ds, train = prepare(cfg)
    info = {
        "dataset": ds.name,
        "classes": ds.classes,
        "train_counts": train.counts(),
        "available_counts": ds.train.counts(),
        "test_counts": ds.test.counts(),
        "judge_per_class": cfg.judge_per_class,
        "judge_counts": ds.judge.counts() if ds.judge is not None else None,  # reserved for the judge CNN, out of "available"
        "image_size": ds.image_size,
        "channels": ds.channels,
        "profile": cfg.profile,
        "skipped": [{"path": p, "reason": r} for p, r in ds.skipped],
    }
    if args.export:
        from core.generators.cfg import save_samples

        split = train if args.split == "train" else ds.test
        save_samples(split, args.export, {"export": args.split, "data": cfg.to_dict()})
        info["exported"] = {"split": args.split, "images": len(split), "dir": args.export}
        if not args.json:
            print(f"wrote {len(split)} {args.split} images to {args.export}")
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{ds.name}: {len(ds.classes)} classes, {ds.image_size}x{ds.image_size}x{ds.channels}, profile={cfg.profile}")
    width = max(5, *(len(c) for c in ds.classes))
    judge = info["judge_counts"]
    print(f"{'class':<{width}}  {'train':>7}  {'of':>7}  {'test':>6}" + (f"  {'judge':>6}" if judge else ""))
    for c, name in enumerate(ds.classes):
        print(f"{name:<{width}}  {info['train_counts'][c]:>7}  {info['available_counts'][c]:>7}  {info['test_counts'][c]:>6}"
              + (f"  {judge[c]:>6}" if judge else ""))
    if judge:
        print(f"judge split: {cfg.judge_per_class} per class ({sum(judge)} images) reserved for the judge CNN before the profile; "
              f"'of' counts what is left")
    if ds.skipped:
        print(f"skipped {len(ds.skipped)} unreadable files:")
        for p, r in ds.skipped[:20]:
            print(f"  {p}: {r}")
    return 0
