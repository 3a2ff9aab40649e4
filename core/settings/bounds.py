"""The range of every number a URL or a form of the app can set, and one way to read them.

A hand-edited link or a remembered form value out of range must not raise in a widget
(Streamlit's number_input raises StreamlitValueAboveMaxError on a default above its max),
and no field may ask for unbounded memory or time. Every page widget and every URL
parameter takes its range from ``BOUNDS``; ``read`` turns any raw value (text, number,
NaN, junk) into an in-range number or None, with a note saying what it did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    lo: float
    hi: float
    integer: bool = True
    what: str = ""  # a unit or a reason shown in the help text

    def text(self) -> str:
        """The range as the help text states it, e.g. 'from 1 to 1,024'."""
        fmt = (lambda v: f"{int(v):,}") if self.integer else (lambda v: f"{v:g}")
        return f"from {fmt(self.lo)} to {fmt(self.hi)}" + (f" {self.what}" if self.what else "")

    def clamp(self, v: float) -> float | int:
        v = min(max(v, self.lo), self.hi)
        return int(v) if self.integer else float(v)


# name -> range. Upper bounds keep one request within what a lab server can hold: sizes and
# counts bound memory, steps and epochs bound time (a job also cancels), seeds are int32.
BOUNDS: dict[str, Bound] = {
    # the data (URL parameters and the Dataset page)
    "image_size": Bound(4, 1024, what="pixels (the memory budget may refuse large sizes first)"),
    "seed": Bound(0, 2**31 - 1),
    "subset_seed": Bound(0, 2**31 - 1),
    "ratio": Bound(1, 1000, integer=False),
    "minority_fraction": Bound(0.05, 0.95, integer=False),
    "test_fraction": Bound(0.05, 0.9, integer=False),
    "test_per_class": Bound(1, 100_000, what="images"),
    "judge_per_class": Bound(0, 100_000, what="images per class (0 = no judge split; each class must keep 1 for training)"),
    "validation_fraction": Bound(0.0, 0.49, integer=False, what="(share of each class reserved for validation; 0 = none)"),
    "validation_min": Bound(1, 100_000, what="validation images per class at least"),
    "count": Bound(1, 1_000_000, what="images per class"),
    # forms
    "cfg_steps": Bound(1, 1_000_000, what="steps"),
    "batch_size": Bound(1, 1024, what="images per step"),
    "preview_steps": Bound(1, 1000, what="sampler steps"),
    "preview_every": Bound(0, 1_000_000, what="steps"),
    "cfg_lr": Bound(1e-6, 1.0, integer=False),
    "cls_lr": Bound(1e-5, 10.0, integer=False),
    "cbdm_tau": Bound(0.0, 10.0, integer=False),
    "epochs": Bound(1, 1000, what="epochs"),
    "cls_steps": Bound(1, 1_000_000, what="optimizer steps"),
    "sampling_steps": Bound(1, 1000, what="sampler steps"),
    "trajectory_steps": Bound(1, 100, what="sampler steps (the denoising view keeps every step; core.jobs.runners.TRAJECTORY_MAX_STEPS)"),
    "images_per_class": Bound(1, 256, what="images"),
    "fill_target": Bound(0, 50_000, what="images per class"),
    "w": Bound(0.0, 50.0, integer=False),
    "guidance_seeds": Bound(1, 16, what="seeds"),
    "measure_n": Bound(0, 1024, what="images per w"),
    "study_seeds": Bound(1, 10, what="seeds (core.study.start.BOUNDS)"),
}
MAX_LIST = 10_000  # entries in a comma-separated list (counts) read from a URL
MAX_WS = 16  # guidance weights in one sweep (rows of the grid)


def help_text(name: str, text: str | None = None) -> str:
    """``text`` followed by the field's range (every bounded widget states its bound)."""
    rng = f"Allowed: {BOUNDS[name].text()}."
    return f"{text.rstrip('.')}. {rng}" if text else rng


def read(name: str, raw, label: str | None = None) -> tuple[float | int | None, str | None]:
    """(value, note). A value out of range is clamped to it, with a note; text that is not a
    finite number gives (None, note). In range: (value, None)."""
    b = BOUNDS[name]
    label = label or name
    try:
        v = float(str(raw).strip()) if not isinstance(raw, (int, float)) else float(raw)
    except (TypeError, ValueError):
        return None, f"{label}={str(raw)[:40]!r} is not a number; it was ignored."
    if not math.isfinite(v):
        return None, f"{label}={str(raw)[:40]!r} is not a finite number; it was ignored."
    if b.integer and v != int(v):
        return None, f"{label}={str(raw)[:40]!r} is not a whole number; it was ignored."
    c = b.clamp(v)
    if c != v:
        side = "above its maximum" if v > b.hi else "below its minimum"
        return c, f"{label}={str(raw)[:40]} is {side} ({b.text()}); {c:g} is used instead."
    return (int(v) if b.integer else v), None


def check_values(name: str, values: list[float], label: str, max_len: int = MAX_LIST) -> None:
    """Raise a ConfigError unless every value is a finite number in ``BOUNDS[name]`` and there are at most ``max_len``."""
    from core.errors import ConfigError

    b = BOUNDS[name]
    if len(values) > max_len:
        raise ConfigError(f"{label} has {len(values):,} values; at most {max_len:,} are allowed.", f"Remove some of the {label}.")
    bad = [v for v in values if not (math.isfinite(v) and b.lo <= v <= b.hi)]
    if bad:
        raise ConfigError(f"{label}: {bad[0]:g} is out of range; each goes {b.text()}.", f"Change it to a value {b.text()}.")


def clamp_default(name: str, value):
    """A widget's default (a remembered or linked value) brought into range; None stays None."""
    if value is None:
        return None
    v, _ = read(name, value)
    return BOUNDS[name].clamp(BOUNDS[name].lo) if v is None else v


# ------------------------------------------------------------------------------ config files
# The range of every number a config can set: a run's config.json, the CLI's --config files and
# --method-params, a study TOML and each of its nested tables (per-classifier overrides included,
# checked after they are applied). core.settings.config_check refuses a value outside it when the config
# is loaded, the same on the CLI and in the app; the app's shared mode (core.study.start) reads
# this table too. The form fields' entries above are reused where the setting is the same.
_INT_ANY = Bound(0, 1_000_000)  # step counts and periods (0 = off where allowed)
_SHARE = Bound(0.0, 1.0, integer=False)
CONFIG_BOUNDS: dict[str, dict[str, Bound]] = {
    "data": {
        "image_size": BOUNDS["image_size"], "ratio": BOUNDS["ratio"], "minority_fraction": BOUNDS["minority_fraction"],
        "counts": BOUNDS["count"], "seed": BOUNDS["seed"], "subset_seed": BOUNDS["subset_seed"],
        "test_fraction": BOUNDS["test_fraction"], "test_per_class": BOUNDS["test_per_class"], "judge_per_class": BOUNDS["judge_per_class"],
    },
    "cfg_train": {
        "steps": BOUNDS["cfg_steps"], "batch_size": BOUNDS["batch_size"], "lr": BOUNDS["cfg_lr"], "weight_decay": _SHARE,
        "p_uncond": _SHARE, "ema_decay": _SHARE, "warmup_steps": _INT_ANY, "grad_clip": Bound(0.0, 1e6, integer=False),
        "cbdm_tau": BOUNDS["cbdm_tau"], "preview_every": BOUNDS["preview_every"], "preview_per_class": Bound(0, 64, what="images per class"),
        "preview_steps": BOUNDS["preview_steps"], "preview_w": BOUNDS["w"], "checkpoint_every": _INT_ANY, "log_every": Bound(1, 1_000_000),
        "max_seconds": Bound(0.0, 1e8, integer=False, what="seconds"), "seed": BOUNDS["seed"],
    },
    "classifier": {
        "epochs": BOUNDS["epochs"], "steps": BOUNDS["cls_steps"], "batch_size": BOUNDS["batch_size"], "lr": BOUNDS["cls_lr"],
        "momentum": _SHARE, "weight_decay": _SHARE, "warmup_epochs": Bound(0.0, 1000.0, integer=False, what="epochs"),
        "warmup_steps": _INT_ANY, "cb_beta": _SHARE, "la_tau": Bound(0.0, 10.0, integer=False), "label_smoothing": _SHARE,
        "synthetic_weight": Bound(0.0, 100.0, integer=False), "augment_pad": Bound(0, 256, what="pixels"),
        "mix_alpha": Bound(0.0, 100.0, integer=False), "eval_every": Bound(0, 1000, what="epochs"),
        "eval_subsample": Bound(1, 1_000_000, what="images"), "checkpoint_every": Bound(0, 1000, what="epochs"), "seed": BOUNDS["seed"],
    },
    # CFG sampling: a study's [cfg_sample], `python -m core sample`, --method-params of a cfg fill
    "cfg_sample": {
        "steps": BOUNDS["sampling_steps"], "batch_size": BOUNDS["batch_size"], "w": BOUNDS["w"], "w_per_class": BOUNDS["w"],
        "w_gamma": Bound(0.0, 10.0, integer=False), "w_max": BOUNDS["w"],
    },
    "method_params.mixup": {"lam": _SHARE, "alpha": Bound(0.0, 100.0, integer=False)},
    "method_params.cutmix": {"lam": _SHARE, "alpha": Bound(0.0, 100.0, integer=False)},
    "method_params.sd": {
        "w": BOUNDS["w"], "steps": BOUNDS["sampling_steps"], "batch_size": Bound(1, 256, what="images per pipeline call"),
        "resolution": Bound(64, 2048, what="pixels"), "max_attempts": Bound(1.0, 100.0, integer=False),
    },
    "study": {
        "seeds": BOUNDS["seed"], "cfg_ws": BOUNDS["w"], "target": BOUNDS["fill_target"], "partial_fill": _SHARE,
        "curve_points": Bound(2, 6), "converged_gain": Bound(0.0, 0.2, integer=False), "cpu_lanes": Bound(1, 64, what="processes"),
    },
    "gate": {"tail_consistency": _SHARE, "precision": _SHARE, "near_copy_rate": _SHARE, "tail_classes": Bound(1, 1000, what="classes")},
}
CONFIG_BOUNDS["method_params.cfg"] = CONFIG_BOUNDS["cfg_sample"]  # --method-params of `train-classifier --method cfg`


def config_bound(table: str, key: str) -> Bound | None:
    """The range of ``key`` in a config table (``cfg_train``, ``classifier``, ``method_params.sd``, ...); None if it has none."""
    return CONFIG_BOUNDS.get(table, {}).get(key)
