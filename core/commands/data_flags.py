"""Flags shared by every command that reads a dataset."""

from __future__ import annotations

import argparse

from core.commands.config_file import add_deprecated
from core.data.loading import DATASETS, DataConfig
from core.data.profiles import ORDERS, PROFILES


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers (e.g. 500,1000,5000)")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="digits", choices=DATASETS, help="dataset name; 'digits' is embedded and works offline")
    g.add_argument("--data-dir", default=None, help="folder or .zip: an ImageFolder (ROOT/train/<class>/, ROOT/test/<class>/ or ROOT/<class>/), or the torchvision download root")
    g.add_argument("--image-size", type=int, default=None, help="resize images to this many pixels square (default: native / most common size)")
    g.add_argument("--profile", default="full", choices=PROFILES, help="imbalance profile applied to the train split")
    g.add_argument("--ratio", type=float, default=10.0, help="imbalance ratio max/min for linear, exponential and step (>= 1)")
    g.add_argument("--minority-fraction", type=float, default=0.5, help="share of classes that are minorities, for step")
    g.add_argument("--counts", type=_int_list, default=None, help="per-class counts for custom (comma-separated), or one count for balanced")
    g.add_argument("--minority-order", default="index", choices=ORDERS, help="index: class 0 is the smallest (the paper); reversed: class 0 the largest (CIFAR-10-LT); shuffled: random with --data-seed")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the data subset: which images each class keeps (and the shuffled order)")
    add_deprecated(g, "--seed", "data_seed", SEED_MESSAGE, type=int)
    g.add_argument("--test-fraction", type=float, default=0.2, help="held-out share when the source has no test split")
    g.add_argument("--judge-per-class", type=int, default=0, help="images per class reserved from train for the judge CNN (FD/KID, precision/recall, novelty) before the profile; 0 = none")


def data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        image_size=args.image_size,
        profile=args.profile,
        ratio=args.ratio,
        minority_fraction=args.minority_fraction,
        counts=args.counts,
        minority_order=args.minority_order,
        seed=args.data_seed,
        test_fraction=args.test_fraction,
        judge_per_class=args.judge_per_class,
    )


DATA_FLAGS = ("dataset", "data_dir", "image_size", "profile", "ratio", "minority_fraction", "counts", "minority_order", "seed", "test_fraction", "judge_per_class")
SEED_MESSAGE = ("--seed is deprecated here and will be removed in the next release: it picks the data subset. "
                "Use --data-seed for the data subset, --train-seed for training.")


def data_defaults(data: dict) -> dict:
    """A saved ``data`` config -> the data flags' defaults (``--config``)."""
    return {("data_seed" if k == "seed" else k): data[k] for k in DATA_FLAGS if k in data}


def data_dict(args: argparse.Namespace) -> dict:
    """The data config as a dict: a --config file's ``data`` (settings without a flag too), the flags over it."""
    flags = {k: v for k, v in data_config(args).to_dict().items() if k in DATA_FLAGS}  # DataConfig's names (seed = --data-seed)
    return {**((getattr(args, "config_dict", None) or {}).get("data") or {}), **flags}


def add_tracking_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-with", default=None, choices=["tensorboard", "mlflow", "wandb", "none"],
                   help="also send the metrics to TensorBoard (event files in the run folder), MLflow (MLFLOW_TRACKING_URI, "
                        "else runs/mlruns; needs the mlflow extra) or W&B (offline in the run folder unless WANDB_MODE says "
                        "otherwise; needs the wandb extra); default: off")


SAMPLE_STEPS_MESSAGE = ("--steps is deprecated for sampler steps and will be removed in the next release: "
                        "use --sample-steps (--steps means optimizer steps, as in train-cfg).")


def add_sample_steps(p, default: int | None, help: str) -> None:
    """--sample-steps (sampler steps), and the old spelling --steps, which warns for one release."""
    p.add_argument("--sample-steps", type=int, default=default, help=help)
    add_deprecated(p, "--steps", "sample_steps", SAMPLE_STEPS_MESSAGE, type=int)


def add_json_argument(p: argparse.ArgumentParser, what: str = "the result") -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as one JSON object on stdout (progress and notes go to stderr)")


def add_overwrite_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="write into an output folder that already holds files (same-named files are replaced)")


def check_out(out, overwrite: bool, flag: str = "--out") -> None:
    """Refuse an output folder that already holds files, unless --overwrite."""
    from pathlib import Path

    from core.errors import ConfigError

    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise ConfigError(f"{flag} {path} already exists and is not empty.", f"Choose another {flag}, or pass --overwrite to write into it.")


def log_with(args: argparse.Namespace) -> str | None:
    """--log-with as a config value: None for none/absent."""
    return None if args.log_with in (None, "none") else args.log_with


def check_flag_ranges(args: argparse.Namespace, flags: dict[str, tuple[str, str]]) -> None:
    """Each flag's value (None: not given, skipped) inside its range in core.settings.bounds.CONFIG_BOUNDS (``(table, key)``;
    table "app" reads core.settings.bounds.BOUNDS[key]); a list-valued flag checks each entry. ConfigError naming the
    flag, the value and the range: the same ranges a config file's keys have."""
    import math

    from core.settings.bounds import BOUNDS, config_bound
    from core.errors import ConfigError

    for flag, (table, key) in flags.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        b = BOUNDS.get(key) if table == "app" else config_bound(table, key)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None or b is None:
                continue
            if not (isinstance(v, (int, float)) and math.isfinite(v) and b.lo <= v <= b.hi):
                raise ConfigError(f"{flag} {v} is out of range: allowed {b.text()}.", f"Pass {flag} {b.text()}.")
