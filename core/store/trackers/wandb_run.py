"""Weights & Biases (the "wandb" extra): one W&B run per lab run, **offline** unless ``WANDB_MODE``
says otherwise, written under ``<run>/wandb/`` (``wandb sync <run>/wandb/offline-run-*`` uploads it
later). Project ``imbalance-lab`` (or ``WANDB_PROJECT``); a study's cells share the study's name as
their W&B group. The config goes in as the run's config, metrics under their namespaced keys,
preview grids as images as they appear, and config.json, results.json and report.html as run files
when it ends. The W&B run id is kept in ``<run>/tracking.json``: a resumed lab run resumes it.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.store.trackers.run_view import artefacts, previews, save_ids, saved_ids, study_of

PROJECT = "imbalance-lab"
WANDB_DIR = "wandb"


class WandB:
    def __init__(self, run_dir: Path, config: dict):
        import wandb

        self.run_dir = run_dir
        run_id = saved_ids(run_dir).get("wandb_run_id")
        study = study_of(run_dir)
        (run_dir / WANDB_DIR).mkdir(exist_ok=True)
        self.run = wandb.init(mode=os.environ.get("WANDB_MODE") or "offline", dir=str(run_dir), project=os.environ.get("WANDB_PROJECT") or PROJECT,
                              name=run_dir.name, id=run_id, resume="allow" if run_id else None, config=config,
                              job_type=str(config.get("kind")), group=study.name if study is not None else None,
                              reinit="create_new")  # the app tracks several runs at once, in threads of one process
        if run_id is None:
            save_ids(run_dir, wandb_run_id=self.run.id)
        self.shown: set[str] = set()

    def log(self, values: dict[str, float], step: int, wall: float | None) -> None:
        import wandb

        images = {}
        for p in previews(self.run_dir):
            if p.name not in self.shown:
                self.shown.add(p.name)
                images["previews"] = wandb.Image(str(p), caption=p.stem)  # the newest grid at this row's step
        self.run.log({**values, **images}, step=step)

    def close(self, state: str) -> None:
        for path in artefacts(self.run_dir):
            self.run.save(str(path), base_path=str(self.run_dir), policy="now")
        self.run.finish(exit_code=0 if state == "done" else 1)
