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
    "trajectory_steps": Bound(1, 100, what="sampler steps (the denoising view keeps every step; core.job_runners.TRAJECTORY_MAX_STEPS)"),
    "images_per_class": Bound(1, 256, what="images"),
    "fill_target": Bound(0, 50_000, what="images per class"),
    "w": Bound(0.0, 50.0, integer=False),
    "guidance_seeds": Bound(1, 16, what="seeds"),
    "measure_n": Bound(0, 1024, what="images per w"),
    "study_seeds": Bound(1, 10, what="seeds (core.study_start.BOUNDS)"),
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
