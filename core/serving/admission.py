"""Admission on a shared server: the memory and compute a job may take, counted server-wide,
before it is queued. Pure functions of configs and the environment (no Streamlit); the app's job
manager calls ``Admission.check`` under its lock, with the jobs already queued or running.

**Memory** (``IMBALANCE_LAB_MEMORY_BUDGET_GB``, default 8, the same budget the dataset loads
use). Every job is estimated from its config before it exists (``job_memory``): its dataset
load (core.data.budget.estimate: every image header, archives included, each under the per-image
cap) plus what the job itself allocates, in float32 (4 bytes) per image element
``e = channels × size²``:

* a training (CFG, classifier): ``batch × e × 4 × ACTIVATIONS`` (activations and gradients,
  ``ACTIVATIONS`` = 64 per input element: a stated allowance, not a measurement);
* a classifier on a filled set, ``balance`` and a study's fills: ``target × classes × e × 5``
  (uint8 images and a float32 copy);
* ``generate``: ``classes × count × e × 5``; ``guidance``: ``(ws × seeds + ws × measure_n) × e × 5``;
  ``trajectory``: ``ws × steps × e × 4``;
* a study: the peak of the cells that can run at once (``cpu_lanes`` of them, else one): the
  largest cell estimates, summed.

Jobs in one lane of one device run one at a time, so what is admitted is, per (device, lane),
the largest queued-or-running estimate; a new job is refused when that sum with it (plus the
datasets the app holds loaded, ``held``) passes the budget.

**Compute** (``IMBALANCE_LAB_MAX_STEPS_PER_USER``, default 500,000): the optimizer steps one
identity has queued or running (``job_steps``; a study: the sum of its cells' steps), so one
student's million-step job cannot hold the class's queue.

A refusal names the estimate, the budget and the setting to lower.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable, Mapping

from core.data import budget as data_budget
from core.errors import ConfigError, DataError

STEPS_VAR = "IMBALANCE_LAB_MAX_STEPS_PER_USER"
DEFAULT_STEPS = 500_000
ACTIVATIONS = 64
GB = data_budget.GB
CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "mnist": 10, "fashion-mnist": 10}
# kind -> the setting a refusal tells the user to lower
LOWER = {"cfg": "the batch size or the image size", "classifier": "the batch size, the fill target or the image size",
         "balance": "the fill target or the image size", "generate": "the number of images",
         "guidance": "the seeds, the w values or the images measured per w", "trajectory": "the sampler steps or the w values",
         "study": "the study's batch sizes ([classifier], [cfg_train]), its target or the image size"}


@dataclass(frozen=True)
class Shape:
    """What a job's data is, as far as it can be told without loading it."""

    channels: int
    size: int
    images: int
    classes: int
    load_bytes: int

    @property
    def elems(self) -> int:
        return self.channels * self.size * self.size


def shape_of(data: dict | None, env: Mapping[str, str] | None = None) -> Shape:
    data = data or {}
    dataset = data.get("dataset") or "digits"
    est = data_budget.estimate(dataset, data.get("data_dir"), data.get("image_size"), env)
    if est is None:  # not on disk yet: the budget cannot see it; count a CIFAR-sized set at its size
        size = int(data.get("image_size") or 32)
        return Shape(3, size, 60_000, CLASSES.get(dataset, 10), 0)
    return Shape(est.channels, est.size, est.images, CLASSES.get(dataset, _folder_classes(data.get("data_dir"))), est.bytes)


def _folder_classes(data_dir: str | None) -> int:
    from pathlib import Path

    if not data_dir or not Path(data_dir).is_dir():
        return 10
    root = Path(data_dir) / "train" if (Path(data_dir) / "train").is_dir() else Path(data_dir)
    return max(1, sum(1 for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))


def _int(v, default: int = 0) -> int:
    try:
        return int(v) if v is not None else default
    except (TypeError, ValueError):
        return default


def _fill(target, shape: Shape) -> int:
    per_class = _int(target) or math.ceil(shape.images / max(1, shape.classes))
    return per_class * shape.classes * shape.elems * 5


def _train(batch, shape: Shape) -> int:
    return _int(batch, 64) * shape.elems * 4 * ACTIVATIONS


def job_memory(kind: str, config: dict, env: Mapping[str, str] | None = None) -> int:
    """Estimated peak bytes of one job (see the module doc)."""
    shape = shape_of(config.get("data"), env)
    c = config
    if kind == "cfg":
        own = _train(c.get("batch_size"), shape)
    elif kind == "classifier":
        fill = _fill(c.get("balance_target"), shape) if (c.get("balance_method") or "none") != "none" else 0
        own = _train(c.get("batch_size", 128), shape) + fill
    elif kind == "balance":
        own = _fill(c.get("target"), shape)
    elif kind == "generate":
        own = len(c.get("classes") or [0]) * _int(c.get("count"), 8) * shape.elems * 5
    elif kind == "guidance":
        ws, seeds = len(c.get("ws") or []), len(c.get("seeds") or [])
        own = (ws * seeds + ws * _int(c.get("measure_n"))) * shape.elems * 5
    elif kind == "trajectory":
        own = max(1, len(c.get("ws") or [])) * _int(c.get("steps"), 25) * shape.elems * 4
    elif kind == "study":
        return study_memory(c, shape)
    else:
        own = 0
    return shape.load_bytes + own


def study_memory(c: dict, shape: Shape) -> int:
    """The study's peak: its largest cells, as many as run at once (``cpu_lanes``, else one)."""
    cls = {**(c.get("classifier") or {})}
    cells = [_train((c.get("cfg_train") or {}).get("batch_size"), shape)]
    for arch in c.get("classifiers") or ["small"]:
        over = {**cls, **((c.get("classifier_overrides") or {}).get(arch) or {})}
        cells.append(_train(over.get("batch_size", 128), shape) + _fill(c.get("target"), shape))
    cells.append(_fill(c.get("target"), shape) + _int((c.get("cfg_sample") or {}).get("batch_size"), 256) * shape.elems * 4 * ACTIVATIONS)
    at_once = max(1, _int(c.get("cpu_lanes"), 1))
    return sum(sorted(cells, reverse=True)[:at_once]) + at_once * shape.load_bytes


def job_steps(kind: str, config: dict, env: Mapping[str, str] | None = None) -> int:
    """Optimizer steps a job will run (a study: the sum of its cells'); 0 for sampling jobs."""
    c = config
    if kind == "cfg":
        return _int(c.get("steps"), 3000)
    if kind == "classifier":
        if c.get("steps"):
            return _int(c["steps"])
        shape = shape_of(c.get("data"), env)
        return _int(c.get("epochs"), 30) * math.ceil(shape.images / max(1, _int(c.get("batch_size"), 128)))
    if kind == "study":
        return study_steps(c, env)
    return 0


def study_steps(c: dict, env: Mapping[str, str] | None = None) -> int:
    seeds = max(1, len(c.get("seeds") or [0]))
    methods = c.get("methods") or []
    variants = max(1, len(methods) + max(0, len(c.get("cfg_ws") or []) - 1) * ("cfg" in methods))
    cfg = _int((c.get("cfg_train") or {}).get("steps"), 3000) if "cfg" in methods else 0
    clf = 0
    for arch in c.get("classifiers") or ["small"]:
        over = {**(c.get("classifier") or {}), **((c.get("classifier_overrides") or {}).get(arch) or {})}
        clf += job_steps("classifier", {**over, "data": c.get("data")}, env)
    curves = 2 if _int(c.get("curve_points"), 1) > 1 else 1  # budget-curve points S/8 + S/4 + S/2 + S run < 2·S
    return seeds * (cfg + variants * clf * curves)


def _peaks(active: Iterable) -> dict[tuple[str, str], int]:
    peaks: dict[tuple[str, str], int] = {}
    for j in active:
        k = (j.device, j.lane)
        peaks[k] = max(peaks.get(k, 0), _admitted(j)[0])
    return peaks


def admitted_peak(active: Iterable) -> int:
    """The memory the jobs queued or running can take at once: per (device, lane), the largest."""
    return sum(_peaks(active).values())


@dataclass(frozen=True)
class Admission:
    """The server's memory and per-identity compute budgets; ``check`` refuses a job that passes one."""

    memory: int = int(data_budget.DEFAULT_BUDGET_GB * GB)
    steps: int = DEFAULT_STEPS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Admission":
        env = os.environ if env is None else env
        raw = (env.get(STEPS_VAR) or "").strip()
        steps = DEFAULT_STEPS
        if raw:
            steps = _int(raw, -1)
            if steps < 1:
                raise ConfigError(f"{STEPS_VAR}={raw!r} is not a whole number of steps of at least 1.", f"Set it to e.g. {DEFAULT_STEPS}, or unset it.")
        return cls(memory=data_budget.budget_bytes(env), steps=steps)

    def check(self, kind: str, config: dict, owner: str | None, lane: str, device: str, active: Iterable, held: int = 0) -> None:
        """Raise when one more ``kind`` job passes the memory budget (with ``active``: the jobs queued or
        running, each with .kind, .run.config, .lane, .device, .owner) or ``owner``'s step budget."""
        active = list(active)
        need = job_memory(kind, config)
        peaks = _peaks(active)
        before = held + sum(peaks.values())
        peaks[(device, lane)] = max(peaks.get((device, lane), 0), need)
        after = held + sum(peaks.values())
        if after > self.memory:
            raise DataError(f"This {kind} job needs about {need / GB:.2f} GB of memory; with the {before / GB:.2f} GB already admitted "
                            f"on this server that passes its budget of {self.memory / GB:.2f} GB ({data_budget.BUDGET_VAR}). Nothing was started.",
                            f"Lower {LOWER.get(kind, 'its sizes')}, or wait for running jobs to end; the person running the server can raise "
                            f"{data_budget.BUDGET_VAR}.")
        if owner is None:
            return
        steps = job_steps(kind, config)
        mine = sum(_admitted(j)[1] for j in active if j.owner == owner)
        if steps and mine + steps > self.steps:
            raise ConfigError(f"This {kind} job runs about {steps:,} optimizer steps; you already have {mine:,} queued or running, and "
                              f"each person may have {self.steps:,} at once ({STEPS_VAR}). Nothing was started.",
                              "Lower its steps (or epochs), or wait for your other jobs to end.")


_MEMO: dict[str, tuple[int, int]] = {}  # run folder -> (memory, steps): a job's config does not change while it is active


def _admitted(job) -> tuple[int, int]:
    key = str(job.run.path)
    if key not in _MEMO:
        if len(_MEMO) > 4096:
            _MEMO.clear()
        cfg = job.run.config
        _MEMO[key] = (job_memory(job.kind, cfg), job_steps(job.kind, cfg))
    return _MEMO[key]


def summary(env: Mapping[str, str] | None = None) -> str:
    """The budgets and their settings, one line each (``python -m core app --check`` prints them;
    a malformed value raises a ConfigError here, before the server starts)."""
    from core.serving import identity, server as serving
    from core.data import disk

    env = os.environ if env is None else env
    adm, lim = Admission.from_env(env), serving.JobLimits.from_env(env)
    per_user, whole = disk.budgets(env)
    users = (env.get(identity.USERS_VAR) or "").strip()
    if users:
        identity.load_users(env)
    rows = [
        (data_budget.BUDGET_VAR, f"{adm.memory / GB:g} GB", "memory, whole server: loaded datasets + the jobs admitted (per device and lane, the largest)"),
        (data_budget.PIXELS_VAR, f"{data_budget.max_pixels(env):,} px", "per image, every header read (archives too)"),
        (STEPS_VAR, f"{adm.steps:,} steps", "optimizer steps queued or running per person (a study: the sum of its cells)"),
        (disk.USER_VAR, f"{per_user / GB:g} GB", "disk per person: uploads and their extracted copies (LRU eviction, never what a job uses)"),
        (disk.SERVER_VAR, f"{whole / GB:g} GB", "disk for the whole cache: every upload and decoded dataset"),
        (serving.INTERACTIVE_SERVER_VAR, f"{lim.interactive_per_server}", "previews queued or running on the server (trainings pause while one runs)"),
        (serving.DOWNLOADS_VAR, "yes" if serving.downloads_allowed(env) else "no", "whether a shared server downloads datasets or models for its users"),
        (identity.USERS_VAR, users or "unset", "per-person tokens (unset: each browser session is its own identity)"),
    ]
    return "Budgets and limits:\n" + "\n".join(f"  {var} = {value}: {what}" for var, value, what in rows)
