"""The experiment pipeline, now the package core.study (its docstring describes a study and its
folder). This module re-exports every name it used to hold, so ``from core.experiment import ...``
keeps working; new code imports from core.study.config, .presets, .plan, .cells and .run."""

from __future__ import annotations

from core.study.cells import (  # noqa: F401
    _CONTEXTS,
    _classifier_cell,
    _cfg_train_cell,
    _Context,
    _context,
    _fill_cell,
    _gate,
    _generator,
    _novelty,
    _posthoc_cell,
    _train_set,
    load_generated,
    run_cell,
    save_generated,
    trains_with_flips,
)
from core.study.config import (  # noqa: F401
    BUDGETS,
    FILLS,
    KIND,
    LOSS_METHODS,
    POSTHOC,
    STUDY_METHODS,
    StudyConfig,
    Variant,
    cfg_name,
    parse_method,
    tomllib,
)
from core.study.plan import (  # noqa: F401
    StudyPlan,
    _slug,
    cell_dir,
    cell_id,
    cfg_run_dir,
    classifier_overrides,
    fill_sizes,
    partial_counts,
    plan_study,
    planned_run,
    sets_path,
    step_budget,
)
from core.study.presets import PAPER_COUNTS, PRESETS, QUICK_METHODS, preset  # noqa: F401
from core.study.run import _CellStatus, default_device, load_results, open_study, run_study, study_state  # noqa: F401

# the private names these had here (tests and older callers import them)
_save_generated, _load_generated, _sets_path = save_generated, load_generated, sets_path
_trains_with_flips, _cfg_run_dir = trains_with_flips, cfg_run_dir
