"""``python -m core novelty``: are generated images new, or near-copies of the training images?"""

from __future__ import annotations

import argparse
import json

from core.commands.data_flags import add_data_arguments, add_json_argument, data_config
from core.commands.config_file import add_config_argument

HELP = ("Score generated images for memorisation: nearest training image of the same class, near-copy rate against a threshold "
        "calibrated on held-out real images, and precision/recall against held-out real images.")


def add_arguments(p) -> None:
    add_data_arguments(p)
    p.add_argument("--run", default=None, help="a CFG run folder: take the data settings (dataset, profile, seed) from its config instead of the data flags")
    p.add_argument("--images", default=None, help="folder written by `sample` (class sub-folders NNN_name or class names) or its samples.npz (required)")
    p.add_argument("--quantile", type=float, default=0.05, help="near-copy threshold: this quantile of held-out real images' NN distances (0.05 = 5th percentile)")
    p.add_argument("--extractor", default="auto", choices=["auto", "inception", "judge", "none"],
                   help="features for the feature-space distances and precision/recall: auto = Inception-v3 when its weights exist, else the judge CNN; none = pixel space only")
    p.add_argument("--k", type=int, default=3, help="neighbours k of the precision/recall manifolds (Kynkäänniemi et al. 2019)")
    p.add_argument("--flips", action=argparse.BooleanOptionalAction, default=None,
                   help="also search the horizontal flips of the training images (default: as the --run's generator trained, "
                        "else on for RGB data, off for grayscale)")
    p.add_argument("--per-sample", action="store_true", help="with --json: each image's nearest neighbour (class, index, mirrored, distance)")
    add_json_argument(p, "the scores")
    add_config_argument(p)


def _flips(args, channels: int) -> bool:
    """--flips, else the run's generator (hflip: None = on for RGB), else on for RGB data."""
    from core.store.atomic import read_json

    if args.flips is not None:
        return args.flips
    hflip = ((read_json(f"{args.run}/config.json") or {}).get("hflip") if args.run else None)
    return bool(hflip) if hflip is not None else channels == 3


def _data_cfg(args):
    from core.store.atomic import read_json
    from core.data.loading import DataConfig
    from core.errors import ConfigError

    if not args.run:
        return data_config(args)
    conf = read_json(f"{args.run}/config.json")
    if not conf or "data" not in conf:
        raise ConfigError(f"{args.run} has no config.json with data settings.", "Pass the --out folder of `python -m core train-cfg`, or give --dataset/--profile instead of --run.")
    return DataConfig.from_dict(conf["data"])


def run(args) -> int:
    from core.errors import ConfigError
    from core.metrics import novelty as nv

    if not args.images:
        raise ConfigError("--images is missing.", "Pass --images FOLDER (what `python -m core sample` wrote), or a --config file that names it.")
    cfg = _data_cfg(args)
    train, held_out, source = nv.held_out_split(cfg)
    generated = nv.load_images(args.images, train.classes, train.channels, train.image_size)
    extractor, note = None, ""
    if args.extractor != "none":
        from core.metrics.generation import get_extractor

        extractor, note = get_extractor(args.extractor, cfg)
    flips = _flips(args, train.channels)
    nov = nv.novelty(generated, train, held_out, extractor, quantile=args.quantile, seed=cfg.seed, flips=flips, per_sample=args.per_sample)
    out = {"near_copy_rate": nov["near_copy_rate"], "cross_class_rate": nov["cross_class_rate"], "mirrored_rate": nov["mirrored_rate"],
           "flips": flips, "per_class": nov["per_class"], "median_nn_relative": nov["median_nn_relative"],
           "heldout_rate": nov["heldout_rate"], "space": "pixel", "rule": nov["rule"], "held_out_source": source,
           "n_images": len(generated)}
    if args.per_sample:
        out["samples"] = nov["samples"]
    if extractor is not None:
        pr = nv.fidelity_diversity(extractor.features(generated.images), generated.labels.numpy(), extractor.features(held_out.images),
                                   held_out.labels.numpy(), generated.classes, k=args.k)
        out["feature"] = nov["feature"]
        out["precision_recall"] = {"extractor": extractor.label, **pr}
        if note:
            out["extractor_note"] = note
    out = nv.clean(out)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{len(generated)} images; {out['rule']}")
    print(f"near-copy rate {_fmt(out['near_copy_rate'])} (of which another class's image {_fmt(out['cross_class_rate'])}, mirrored "
          f"{_fmt(out['mirrored_rate'])}), median NN distance / real-to-real {_fmt(out['median_nn_relative'])}, "
          f"held-out check rate {_fmt(out['heldout_rate'])}")
    if "feature" in out:
        f = out["feature"]
        print(f"feature space ({f['extractor']}): near-copy rate {_fmt(f['near_copy_rate'])} (another class {_fmt(f['cross_class_rate'])}, "
              f"mirrored {_fmt(f['mirrored_rate'])})")
    if "precision_recall" in out:
        pr = out["precision_recall"]
        print(f"precision {_fmt(pr['precision'])}, recall {_fmt(pr['recall'])} (k={pr['k']}, {pr['extractor']}, vs held-out real images)")
    print(f"{'class':<12} {'n':>5} {'threshold':>10} {'near-copy':>10} {'median NN':>10} {'relative':>9}")
    for name, e in out["per_class"].items():
        print(f"{name:<12} {e['n']:>5} {_fmt(e['threshold']):>10} {_fmt(e['near_copy_rate']):>10} {_fmt(e['median_nn_distance']):>10} {_fmt(e['median_nn_relative']):>9}"
              + (f"  ({e['note']})" if e.get("note") else ""))
    return 0


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"
