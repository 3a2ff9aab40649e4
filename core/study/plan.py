"""What a study will run: the cells and their ids, fill sizes, step budgets, and the folder paths."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from core.store.atomic import read_json
from core.study.graph import Cell
from core.study.config import POSTHOC, StudyConfig, Variant


def _slug(variant: str) -> str:
    """A file-name-safe variant name: cfg@w=7.5 -> cfg_w7.5."""
    return variant.replace("@", "_").replace("=", "")


def cell_dir(root: Path, cid: str) -> Path:
    return root / "cells" / cid


def read_cell_result(root: Path, cid: str) -> dict | None:
    """A finished cell's results.json with its run folders re-anchored on ``root``.

    A cell records ``run_dir`` (its own, and each budget-curve point's) as the path the study was
    started with: relative to that working directory, or absolute on that machine. Read from another
    working directory, or after the folder was moved, those paths miss, and the paired verdicts would
    lose their test-image noise term (core.study.rows._correctness falls back to seeds only). The
    cell's own run_dir ends in ``cells/<cid>``, which gives the root it was written under; every path
    under that root is moved onto ``root``. Paths outside it are left as they are."""
    res = read_json(cell_dir(Path(root), cid) / "results.json")
    own = res.get("run_dir") if isinstance(res, dict) else None
    if not isinstance(own, str) or Path(own).parts[-2:] != ("cells", cid):
        return res
    old = Path(own).parent.parent

    def anchored(path):
        if not isinstance(path, str):
            return path
        try:
            return str(Path(root) / Path(path).relative_to(old))
        except ValueError:
            return path

    res["run_dir"] = anchored(own)
    for point in res.get("curve") or []:
        if isinstance(point, dict) and "run_dir" in point:
            point["run_dir"] = anchored(point["run_dir"])
    return res


def cfg_run_dir(root: Path, seed: int) -> Path:
    return root / "cfg" / f"seed{seed}"


def sets_path(root: Path, fill_name: str, seed: int) -> Path:
    return root / "sets" / f"{_slug(fill_name)}__seed{seed}.safetensors"


def partial_counts(counts: list[int], target: int, fraction: float) -> list[int]:
    """Per-class sizes of a partial fill: k_c = n_c^(1−f)·T^f (a fraction f of the way from n_c
    to T in log scale), rounded, never below n_c nor above T."""
    return [min(max(n, target), max(n, int(round(math.exp((1 - fraction) * math.log(n) + fraction * math.log(target))))))
            for n in counts]


def fill_sizes(cfg: StudyConfig, counts: list[int], v: Variant) -> list[int]:
    """Per-class image counts of variant v's training set (known before anything is generated)."""
    if v.fill == "none":
        return list(counts)
    target = int(cfg.target) if cfg.target is not None else max(counts)
    if v.partial:
        return partial_counts(counts, target, float(cfg.partial_fill))
    return [max(n, target) for n in counts]


@dataclass
class StudyPlan:
    """What a study will run: per-seed counts, every variant's training-set size, the budget, the cells."""

    counts: list[int]  # the imbalanced per-class counts (the same for every seed)
    train_sizes: dict[str, int]  # variant name -> images in its training set
    budget: dict[str, dict]  # classifier -> {"steps", "warmup_steps"} under budget "steps"; {} under "epochs"
    cells: list[Cell]
    specs: dict[str, dict]  # cell id -> its parameters (JSON), the executor's payload
    planned: dict[str, dict] = field(default_factory=dict)  # "variant|classifier" -> planned steps, images_seen, train_size, batch_size

    @staticmethod
    def clf_id(variant: str, clf: str, seed: int) -> str:
        return cell_id("clf", variant, clf, seed)

    @staticmethod
    def fill_id(fill_name: str, seed: int) -> str:
        return cell_id("fill", fill_name, seed=seed)


def classifier_overrides(cfg: StudyConfig, clf: str) -> dict:
    return {**cfg.classifier, **cfg.classifier_overrides.get(clf, {})}


def step_budget(cfg: StudyConfig, clf: str, train_sizes: dict[str, int]) -> dict:
    """Under budget "steps": S = classifier.steps if given, else epochs × ⌊n_max / b⌋ for the
    largest training set n_max at batch b; warm-up W = warmup_steps, else warmup_epochs × ⌊n_max / b⌋.
    Every method of the study then runs S steps at batch b (the same images seen)."""
    from core.train.classifier import ClassifierConfig, schedule

    s = schedule(ClassifierConfig.from_dict(classifier_overrides(cfg, clf)), max(train_sizes.values()))
    return {"steps": s["steps"], "warmup_steps": s["warmup_steps"]}


def planned_run(cfg: StudyConfig, clf: str, n: int, budget: dict) -> dict:
    """The steps a classifier on n images will run: the study's budget, or epochs × ⌊n/b⌋."""
    from core.train.classifier import ClassifierConfig, schedule

    s = schedule(ClassifierConfig.from_dict({**classifier_overrides(cfg, clf), **budget}), n)
    return {k: int(s[k]) for k in ("steps", "images_seen", "train_size", "batch_size")}


def cell_id(kind: str, name: str | None = None, clf: str | None = None, seed: int = 0) -> str:
    parts = [kind] + ([_slug(name)] if name else []) + ([clf] if clf else []) + [f"seed{seed}"]
    return "__".join(parts)


def plan_study(cfg: StudyConfig, counts: list[int]) -> StudyPlan:
    """The study's cells with their dependencies: cfg-train -> fill -> classifier (-> posthoc)."""
    variants = cfg.variants()
    sizes = {v.name: sum(fill_sizes(cfg, counts, v)) for v in variants}
    budget = {c: step_budget(cfg, c, sizes) for c in cfg.classifiers} if cfg.budget == "steps" else {}
    cells, specs = [], {}

    def add(cell: Cell, **spec) -> None:
        cells.append(cell)
        specs[cell.id] = spec

    for seed in cfg.seeds:
        train_id = cell_id("cfg-train", seed=seed)
        if any(v.fill == "cfg" for v in variants):
            add(Cell(train_id, "cfg-train", gpu=True, label=f"CFG model, seed {seed}"), seed=seed)
        fills = {v.fill_name: v for v in variants if v.fill != "none" or cfg.generation_metrics}
        for name, v in fills.items():
            deps = (train_id,) if v.fill == "cfg" else ()
            partial = [fill_sizes(cfg, counts, p) for p in variants if p.partial and p.fill_name == name]
            add(Cell(cell_id("fill", name, seed=seed), "fill", deps, gpu=v.fill in ("cfg", "sd"), label=f"{name} fill, seed {seed}"),
                fill=v.fill, name=name, w=v.w, seed=seed, partial_sizes=partial[0] if partial else None)
        for v in variants:
            for clf in cfg.classifiers:
                cid = cell_id("clf", v.name, clf, seed)
                if v.loss == POSTHOC:
                    add(Cell(cid, "posthoc", (cell_id("clf", "none", clf, seed),), label=f"{v.name} × {clf}, seed {seed}"),
                        variant=v.name, classifier=clf, seed=seed)
                    continue
                deps = (cell_id("fill", v.fill_name, seed=seed),) if v.fill != "none" else ()
                add(Cell(cid, "classifier", deps, gpu=True, label=f"{v.name} × {clf}, seed {seed}"),
                    variant=v.name, fill=v.fill, fill_name=v.fill_name, w=v.w, loss=v.loss, partial=v.partial, classifier=clf, seed=seed,
                    sizes=fill_sizes(cfg, counts, v), budget=budget.get(clf, {}))
    planned = {f"{v.name}|{c}": planned_run(cfg, c, sizes[v.name], budget.get(c, {})) for v in variants for c in cfg.classifiers}
    return StudyPlan(counts, sizes, budget, cells, specs, planned)
