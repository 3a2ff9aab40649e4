"""The app's workspace, without Streamlit: the data choice as URL query parameters and as a
small file under ``.cache/``, model pickers, and the duplicate-submission check.

* A tab's dataset and profile live in its URL (``?dataset=digits&profile=linear&ratio=20``),
  so a reload or a shared link reproduces the view. ``to_params``/``from_params`` convert.
* A new tab with no parameters starts from the last workspace saved on the server
  (``.cache/workspace.json``); ``save``/``load`` read and write it atomically.
* ``cfg_models`` orders CFG models for pickers: finished first, newest first; cancelled or
  interrupted models only with a checkpoint, labelled with their state and trained steps.
* ``recent_duplicate`` finds a queued/running job with an identical config submitted in the
  last minute, so a page can ask before starting the same job twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path

from core.settings import bounds
from core.store.atomic import atomic_write_json, read_json
from core.store.checkpoint import checkpoint_path
from core.data.loading import DataConfig
from core.paths import cache_dir
from core.store.runs import Run

FILE = "workspace.json"
# DataConfig field -> short URL parameter (the readable names are kept where they are short)
PARAM_NAMES = {"dataset": "dataset", "profile": "profile", "ratio": "ratio", "minority_fraction": "minority",
               "counts": "counts", "minority_order": "order", "seed": "seed", "image_size": "size",
               "data_dir": "dir", "test_fraction": "test", "subset_seed": "subset", "test_per_class": "testn",
               "judge_per_class": "judgen", "validation_fraction": "val", "validation_min": "valn"}
DUPLICATE_WINDOW_S = 60.0


# ------------------------------------------------------------------------ query params
def to_params(cfg: DataConfig) -> dict[str, str]:
    """The non-default fields of ``cfg`` as string query parameters (dataset and profile always)."""
    default = DataConfig()
    out: dict[str, str] = {"dataset": cfg.dataset, "profile": cfg.profile}
    for f in fields(DataConfig):
        v = getattr(cfg, f.name)
        if f.name in ("dataset", "profile") or v == getattr(default, f.name) or v is None:
            continue
        out[PARAM_NAMES.get(f.name, f.name)] = ",".join(map(str, v)) if isinstance(v, list) else f"{v:g}" if isinstance(v, float) else str(v)
    return out


# DataConfig field -> its range in core.settings.bounds (every number a URL can set is bounded)
BOUNDED = {"ratio": "ratio", "minority_fraction": "minority_fraction", "test_fraction": "test_fraction", "seed": "seed",
           "image_size": "image_size", "subset_seed": "subset_seed", "test_per_class": "test_per_class",
           "judge_per_class": "judge_per_class", "validation_fraction": "validation_fraction", "validation_min": "validation_min"}


def from_params(params, notes: list[str] | None = None) -> DataConfig | None:
    """A DataConfig from query parameters (a mapping of str -> str), or None without ``dataset``.

    A hand-edited URL must not break the page: a number out of its range (core.settings.bounds) is
    clamped into it, and an unparseable or non-finite value is dropped (the field keeps its
    default); either way a sentence saying so is appended to ``notes``. Whether the values
    make sense together is the loader's job.
    """
    if not params or "dataset" not in params:
        return None
    notes = [] if notes is None else notes
    kw: dict = {}
    for f in fields(DataConfig):
        key = PARAM_NAMES.get(f.name, f.name)  # a field added later still round-trips under its own name
        if key not in params:
            continue
        raw = str(params[key])
        if f.name == "counts":
            kw[f.name] = _counts(raw, key, notes)
        elif f.name in BOUNDED:
            value, note = bounds.read(BOUNDED[f.name], raw, label=key)
            if note:
                notes.append(note)
            if value is not None:
                kw[f.name] = value
        else:
            kw[f.name] = raw
    return DataConfig(**kw)


def _counts(raw: str, key: str, notes: list[str]) -> list[int] | None:
    parts = [x for x in raw.split(",") if x.strip()]
    if len(parts) > bounds.MAX_LIST:
        notes.append(f"{key} has {len(parts):,} entries, more than {bounds.MAX_LIST:,}; it was ignored.")
        return None
    out = []
    for x in parts:
        value, note = bounds.read("count", x, label=key)
        if value is None:
            notes.append(f"{key}={raw[:40]!r} is not a list of whole numbers; it was ignored.")
            return None
        if note:
            notes.append(note)
        out.append(value)
    return out or None


# ---------------------------------------------------------------------------- the file
def path() -> Path:
    return cache_dir() / FILE


def load() -> dict:
    """The last saved workspace ({"data": {...}, "forms": {...}}), {} if none or unreadable."""
    try:
        return read_json(path(), {}) or {}
    except (ValueError, OSError):
        return {}


def save(**parts) -> None:
    """Merge ``parts`` (e.g. data=cfg.to_dict(), forms={...}) into the saved workspace."""
    cur = load()
    changed = False
    for k, v in parts.items():
        if cur.get(k) != v:
            cur[k] = v
            changed = True
    if changed:
        atomic_write_json(path(), cur)


def saved_data() -> DataConfig | None:
    d = load().get("data")
    try:
        return DataConfig.from_dict(d) if d else None
    except TypeError:
        return None


# ------------------------------------------------------------------------ model pickers
STATE_ORDER = {"done": 0, "cancelled": 1, "interrupted": 1, "failed": 2, "running": 3, "queued": 3}


def trained_steps(run: Run) -> int:
    st = run.status
    return int(st.get("step") or 0)


def cfg_models(runs: list[Run], dataset: str | None = None, data: DataConfig | None = None) -> list[tuple[str, Run]]:
    """(label, run) for CFG models usable for sampling, best choice first.

    With ``data`` (the page's data config), models trained on that very split (same dataset,
    profile and its settings, seed) come first, and every other one is labelled with the data
    it was trained on (e.g. "⚠ other data: exponential ratio 50"): its samples and its "nearest
    training image" come from a set the page's data is not. Within each, finished models first,
    newest first; then cancelled/interrupted/failed ones that kept a checkpoint, labelled as
    such. Running, queued and checkpoint-less runs are left out.
    """
    dataset = data.dataset if data is not None else dataset
    out = []
    for r in runs:
        rdata = r.config.get("data") or {}
        if dataset is not None and rdata.get("dataset") != dataset:
            continue
        state = r.status.get("state")
        if state not in ("done", "cancelled", "interrupted", "failed") or checkpoint_path(r.checkpoints, "latest") is None:
            continue
        steps, total = trained_steps(r), int(r.status.get("total") or 0)
        trained = f"{steps:,} steps" if state == "done" or not total else f"{steps:,} of {total:,} steps"
        tag = "" if state == "done" else f"⚠ {state.upper()}, "
        other = data is not None and not same_split(rdata, data)
        out.append((f"{r.id} · {tag}{trained}" + (f" · ⚠ other data: {split_label(rdata)}" if other else ""), r, other))
    # ids start with a timestamp, so a reverse id sort is newest first (stable under the sorts below)
    out.sort(key=lambda t: t[1].id, reverse=True)
    out.sort(key=lambda t: STATE_ORDER.get(t[1].status.get("state"), 9))
    out.sort(key=lambda t: t[2])  # the page's own data first
    return [(label, r) for label, r, _ in out]


# The DataConfig fields that decide which training images a model saw (resolution and test split aside).
SPLIT_FIELDS = ("dataset", "data_dir", "profile", "ratio", "minority_fraction", "counts", "minority_order", "seed", "subset_seed")


def _split_key(d: dict | DataConfig) -> tuple:
    cfg = d if isinstance(d, DataConfig) else DataConfig.from_dict(d)
    vals = {f: getattr(cfg, f) for f in SPLIT_FIELDS}
    if cfg.profile not in ("linear", "exponential", "step"):
        vals["ratio"] = None  # ignored by the profile
    if cfg.profile != "step":
        vals["minority_fraction"] = None
    if cfg.profile not in ("custom", "balanced"):
        vals["counts"] = None
    vals["counts"] = tuple(vals["counts"]) if vals["counts"] else None
    return tuple(vals.values())


def same_split(a: dict | DataConfig, b: dict | DataConfig) -> bool:
    """Whether two data configs keep the same training images (settings a profile ignores aside)."""
    return _split_key(a) == _split_key(b)


def split_label(d: dict | DataConfig) -> str:
    """A short name for a data config's split: "exponential ratio 50", "paper, seed 3", "custom 5,10"."""
    cfg = d if isinstance(d, DataConfig) else DataConfig.from_dict(d)
    text = cfg.profile
    if cfg.profile in ("linear", "exponential", "step"):
        text += f" ratio {cfg.ratio:g}"
    if cfg.profile in ("custom", "balanced") and cfg.counts:
        text += " " + ",".join(map(str, cfg.counts))
    if cfg.minority_order != "index":
        text += f", {cfg.minority_order}"
    if cfg.seed != 0 or cfg.subset_seed is not None:
        text += f", seed {cfg.seed}" + (f"/{cfg.subset_seed}" if cfg.subset_seed is not None else "")
    return text


def fresh_model(runs: list[Run], seen: set[str] | None, since: float | None = None) -> Run | None:
    """The newest finished model that finished since a page was last shown: one not in ``seen``
    (the finished ids that page showed last time), else, when the page has not been shown in
    this session (``seen`` None), one whose status was last updated after ``since`` (when its
    form was last used). None if there is none."""
    done = [r for r in runs if r.status.get("state") == "done"]
    if seen is not None:
        new = [r for r in done if r.id not in seen]
    elif since is not None:
        new = [r for r in done if float(r.status.get("updated") or 0) > since]
    else:
        new = []
    return max(new, key=lambda r: float(r.status.get("updated") or 0), default=None)


# ---------------------------------------------------------------------- duplicate guard
def _comparable(config: dict) -> dict:
    # through JSON, as config.json stores it (tuples become lists, keys strings)
    return json.loads(json.dumps({k: v for k, v in config.items() if k not in ("created", "kind")}, default=str))


def recent_duplicate(jobs, kind: str, config: dict, within_s: float = DUPLICATE_WINDOW_S, now: float | None = None):
    """The queued/running job of ``kind`` with this exact config submitted within ``within_s``, else None."""
    now = time.time() if now is None else now
    want = _comparable(config)
    for j in jobs:
        if j.kind != kind or not j.active or now - j.submitted > within_s:
            continue
        have = _comparable(j.run.config)  # a runner may add defaults to its config.json: compare what was asked
        if all(have.get(k) == v for k, v in want.items()):
            return j
    return None
