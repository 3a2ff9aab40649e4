"""A study as it runs, read from its folder: the plan's cells with their states, and the rows so far.

Read-only and cheap (no training, no dataset load except for the sample strip): the Study
page polls these while a study runs. A study folder (core.study) holds

    config.json   the StudyConfig             status.json   the study's state and every cell's ("cells")
    cells/<id>/results.json   a finished cell's result        sets/<fill>__seed<k>.safetensors   generated images

A cell counts as finished when its results.json exists, whatever status.json says: a resumed
study first lists every cell as pending again, then skips the finished ones. The rows are
``core.study.rows.aggregate`` over the finished cells, so a partial row is the same arithmetic as
the final table on fewer seeds.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from core.store.atomic import read_json
from core.study.graph import CANCELLED, FAILED, OK, UNAVAILABLE, CellOutcome, blocked_by
from core.study.config import StudyConfig
from core.study.plan import cell_dir, plan_study, read_cell_result
from core.study.gate import BELOW_GATE, gate_reason, gate_symbol
from core.study.stats import describe_verdict

# what the grid shows per cell; "stopped": it was running when the study stopped (cancel, restart)
PENDING, RUNNING, DONE, STOPPED = "pending", "running", "done", "stopped"
CELL_STATES = (DONE, RUNNING, PENDING, FAILED, UNAVAILABLE, CANCELLED, STOPPED)
REFERENCES = ("none", "oversample")  # every method is compared against these (and the study's compare_to)
BELOW_GATE_PROGRESS = "below gate"  # a finished row whose generator fill failed its gate (core.study.gate), not a failure

def study_config(study_dir: str | Path) -> StudyConfig:
    return StudyConfig.from_dict(read_json(Path(study_dir) / "config.json") or {})


def plan_cells(cfg: StudyConfig, counts: list[int] | None = None) -> list:
    """The study's cells in run order. Their ids, kinds, labels and dependencies do not depend
    on the class counts, so a placeholder stands in before the study has loaded its data."""
    return plan_study(cfg, counts or [1]).cells


# ------------------------------------------------------------------------------ cell states
def cell_states(study_dir: str | Path, cfg: StudyConfig | None = None, active: bool | None = None) -> dict[str, dict]:
    """{cell id: {kind, label, state, error}} in run order, state one of CELL_STATES.

    ``active``: whether the study's job is queued or running (default: its status.json says so);
    a cell still marked running in a study that is not is shown as ``stopped``."""
    study_dir = Path(study_dir)
    status = read_json(study_dir / "status.json") or {}
    cfg = cfg or study_config(study_dir)
    if active is None:
        active = status.get("state") in ("queued", "running")
    recorded = status.get("cells") or {}
    out = {}
    for cell in plan_cells(cfg):
        rec = recorded.get(cell.id) or {}
        state = rec.get("state", PENDING)
        if (cell_dir(study_dir, cell.id) / "results.json").exists() or state == OK:
            state = DONE
        elif state == RUNNING and not active:
            state = STOPPED
        out[cell.id] = {"kind": cell.kind, "label": cell.label, "state": state, "error": rec.get("error") or rec.get("reason")}
    return out


def _step_name(label: str) -> str:
    return re.sub(r", seed -?\d+$", "", label)


def cell_grid(cells: dict[str, dict], seeds: list[int]) -> pd.DataFrame:
    """The plan as a grid: one row per step (CFG model, each fill, each method × classifier) in
    run order, one column per seed ("seed 0", ...), each entry the cell's state ("" if the step
    has no cell for that seed)."""
    rows: dict[str, dict] = {}
    for cid, c in cells.items():
        seed = int(re.search(r"__seed(-?\d+)$", cid).group(1))
        rows.setdefault(_step_name(c["label"] or cid), {})[f"seed {seed}"] = c["state"]
    cols = [f"seed {s}" for s in seeds]
    grid = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols).fillna("")
    grid.index.name = "step"
    return grid


def counts_by_state(cells: dict[str, dict]) -> dict[str, int]:
    out = {s: 0 for s in CELL_STATES}
    for c in cells.values():
        out[c["state"]] = out.get(c["state"], 0) + 1
    return out


def progress_text(cells: dict[str, dict]) -> str:
    """e.g. "3 of 24 cells done · 1 running · 20 pending" (states with no cell left out)."""
    n = counts_by_state(cells)
    parts = [f"{n[DONE]} of {len(cells)} cells done"] + [f"{n[s]} {s}" for s in CELL_STATES if s != DONE and n.get(s)]
    return " · ".join(parts)


# ------------------------------------------------------------------------------- the rows
def outcomes(study_dir: str | Path, cfg: StudyConfig, cells: dict[str, dict]) -> dict[str, CellOutcome]:
    """The cells that ended, as the executors' outcomes: ok with its results.json, or failed /
    unavailable / cancelled with its error; a cell not run yet whose dependency ended otherwise
    than ok takes that state now (as the executor will give it: core.study.graph.blocked_by). Pending,
    running and stopped cells are left out."""
    out = {}
    for cell in plan_cells(cfg):  # run order: dependencies first
        c = cells.get(cell.id) or {"state": PENDING}
        if c["state"] == DONE:
            res = read_cell_result(Path(study_dir), cell.id)
            if res is not None:
                out[cell.id] = CellOutcome(OK, result=res)
        elif c["state"] in (FAILED, UNAVAILABLE, CANCELLED):
            out[cell.id] = CellOutcome(c["state"], error=c.get("error") or c["state"])
        elif c["state"] == PENDING and (blocked := blocked_by(cell, out)) is not None:
            out[cell.id] = blocked
    return out


def progress_rows(study_dir: str | Path, cfg: StudyConfig | None = None, cells: dict | None = None) -> tuple[list[dict], list[str]]:
    """(rows, notes): ``study_rows.aggregate`` over the cells finished so far, every method also
    compared against REFERENCES. Each row gains ``seeds_label`` ("2 of 3 seeds") and a
    ``progress`` state: done, below gate (done, its generator fill failed its gate), partial,
    waiting, failed or unavailable."""
    from core.study.rows import aggregate

    study_dir = Path(study_dir)
    cfg = cfg or study_config(study_dir)
    cells = cells if cells is not None else cell_states(study_dir, cfg)
    done = outcomes(study_dir, cfg, cells)
    clf = [o.result for cid, o in done.items() if o.state == OK and cells[cid]["kind"] == "classifier"]
    counts = next((r.get("imbalanced_counts") for r in clf if r.get("imbalanced_counts")), None)
    test_size = next((int(r["test_size"]) for r in clf if r.get("test_size")), 0)
    refs = list(dict.fromkeys([*REFERENCES, *cfg.compare_to]))
    wide = dataclasses.replace(cfg, compare_to=refs)
    rows, notes = aggregate(wide, plan_study(wide, counts or [1]), done, test_size,
                            regated=(read_json(Path(study_dir) / "config.json") or {}).get("regated"))
    total = len(cfg.seeds)
    for r in rows:
        r["seeds_label"] = f"{r['n_seeds']} of {total} seeds" if r["n_seeds"] < total else f"all {total} seeds"
        if r["state"] in (FAILED, UNAVAILABLE):
            r["progress"] = r["state"]
        else:
            r["progress"] = "done" if r["n_seeds"] == total else "partial" if r["n_seeds"] else "waiting"
            if r["progress"] == "done" and r["state"] == BELOW_GATE:
                r["progress"] = BELOW_GATE_PROGRESS  # finished, but its fill failed the generator gate: no verdict (not a failure)
        if not counts and not r["n_seeds"]:
            r["steps"] = r["images_seen"] = r["train_size"] = None  # planned from a placeholder: not known yet
    return rows, notes


def _ci(ci) -> str:
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "—"


def verdict_frame(rows: list[dict]) -> pd.DataFrame:
    """The verdict table: one line per method × classifier, finished rows first: seeds so far,
    accuracy with its CI over seeds, macro/minority F1, then Δ accuracy, its CI and the verdict
    against each reference (paired over the seeds both rows have)."""
    seen = {ref for r in rows for ref in r.get("vs", {})}
    refs = [ref for ref in REFERENCES if ref in seen] + sorted(seen - set(REFERENCES))
    out = []
    for r in rows:
        acc = r["accuracy"]
        line = {"method": r["method"], "classifier": r["classifier"], "seeds": r["seeds_label"], "progress": r["progress"],
                "steps": r["steps"], "accuracy": acc["mean"], "accuracy 95% CI": _ci(acc["ci95"]),
                "macro-F1": r["macro_f1"]["mean"], "minority-F1": r["minority_f1"]["mean"], "gate": gate_symbol(r.get("gate"))}
        for ref in refs:
            v = (r.get("vs") or {}).get(ref)
            has = v is not None and v.get("diff_mean") is not None
            line[f"vs {ref}: Δ accuracy"] = v["diff_mean"] if has else None
            line[f"vs {ref}: 95% CI"] = (_ci(v["ci95"]) if v["ci95"] else "n/a (one seed)") if has else "—"
            line[f"vs {ref}: verdict"] = describe_verdict(v) if has else ("(itself)" if r["method"] == ref else "—")
            mf = (v or {}).get("minority_f1") or {}  # issue 25: the minority's verdict beside accuracy's
            line[f"vs {ref}: Δ minority F1"] = mf.get("diff_mean")
            line[f"vs {ref}: minority F1 verdict"] = (describe_verdict(mf) if mf.get("diff_mean") is not None
                                                      else ("(itself)" if r["method"] == ref else "—"))
        if any(x.get("share_of_gap") or x.get("real_images") for x in rows):
            from core.study.tables import share_of_gap_columns

            g = share_of_gap_columns(r)
            line["share of gap (acc.)"], line["share of gap (minority F1)"] = g["share_of_gap_accuracy"], g["share_of_gap_minority_f1"]
        line["why"] = r.get("reason") or "; ".join(f"seed {s}: {str(e).splitlines()[0]}" for s, e in (r.get("errors") or {}).items())
        if r["state"] == BELOW_GATE:
            line["why"] = gate_reason(r.get("gate"))
        out.append(line)
    order = {"done": 0, BELOW_GATE_PROGRESS: 1, "partial": 2, "failed": 3, "unavailable": 4, "waiting": 5}
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    return frame.sort_values("progress", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------- sample strip
STRIP_ORDER = ("cfg", "mixup", "cutmix", "oversample")  # CFG at each w first, then the baselines, then the rest (sd)


def fills_on_disk(study_dir: str | Path, cfg: StudyConfig) -> dict[int, list[str]]:
    """{seed: [fill name, ...]} of the generated sets the study has saved, in STRIP_ORDER."""
    from core.study.plan import sets_path

    names = list(dict.fromkeys(v.fill_name for v in cfg.variants() if v.fill != "none"))
    names.sort(key=lambda n: STRIP_ORDER.index(n.split("@")[0]) if n.split("@")[0] in STRIP_ORDER else len(STRIP_ORDER))
    out = {}
    for s in cfg.seeds:
        have = [n for n in names if sets_path(Path(study_dir), n, s).exists()]
        if have:
            out[s] = have
    return out


def fill_stamp(study_dir: str | Path, seed: int, fills: list[str]) -> tuple[float, ...]:
    """The saved sets' modification times: a cache key that changes when a fill is rewritten."""
    from core.study.plan import sets_path

    return tuple(sets_path(Path(study_dir), n, seed).stat().st_mtime for n in fills)


def sample_strip(study_dir: str | Path, cfg: StudyConfig, seed: int, fills: list[str], n_classes: int = 6) -> tuple[np.ndarray, list[str], list[str]]:
    """An image grid: for each fill a row of generated images (one per class, the most-filled
    classes first) and below it each image's nearest training image, searched over every class
    (and their mirror images where the generator trains with flips), as the near-copy rule
    searches (core.metrics.novelty.nearest_training); columns are labelled with the class.
    Returns (grid, class names of the columns, one line per fill naming its neighbours' classes)."""
    import torch

    from core.viz import figures as viz
    from core.data.loading import load_dataset
    from core.data.profiles import apply_profile
    from core.metrics.novelty import nearest_training
    from core.study.cells import load_generated, trains_with_flips
    from core.study.plan import sets_path

    train = apply_profile(load_dataset(cfg.data).train, cfg.data_for_seed(seed))
    sets = {n: s for n in fills if (s := load_generated(sets_path(Path(study_dir), n, seed))) is not None and len(s)}
    if not sets:
        return np.zeros((0, 0, 3), np.uint8), [], []
    flips = trains_with_flips(cfg, train)
    added = np.bincount(next(iter(sets.values())).labels.numpy(), minlength=len(train.classes))
    classes = [int(c) for c in np.argsort(-added, kind="stable") if added[c] > 0][:n_classes]
    blank = torch.full(tuple(train.images.shape[1:]), 255, dtype=torch.uint8)
    rows, labels, neighbours = [], [], []
    for name, s in sets.items():
        first = [torch.nonzero(s.labels == c).flatten()[:1] for c in classes]
        picked = s.subset(torch.cat(first)) if any(len(f) for f in first) else None
        near = nearest_training(picked, train, flips=flips) if picked is not None else []
        by_class = {int(picked.labels[i]): (picked.images[i], d.get("image")) for i, d in enumerate(near)}
        found = {int(picked.labels[i]): d for i, d in enumerate(near)}
        neighbours.append(f"{name}: " + ", ".join(
            f"{train.classes[c]} → {found[c]['neighbour_class']}{' (mirrored)' if found[c].get('mirrored') else ''}"
            + (" ⚠ another class" if found[c]["neighbour_class"] != train.classes[c] else "") for c in classes if c in found))
        rows.append(torch.stack([by_class[c][0] if c in by_class else blank for c in classes]))
        rows.append(torch.stack([by_class[c][1] if c in by_class and by_class[c][1] is not None else blank for c in classes]))
        labels += [name, "  nearest train"]
    names = [train.classes[c] for c in classes]
    grid = viz.labelled_grid(rows, labels, names, row_title="fill", col_title=f"class (seed {seed})")
    return grid, names, neighbours
