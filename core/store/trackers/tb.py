"""TensorBoard: event files in ``<run>/tensorboard/``: scalars, the config as text, preview grids as
images (as they appear), and the run's hyperparameters with its last metrics (HParams tab) at the end."""

from __future__ import annotations

import json
from pathlib import Path

from core.store.trackers.run_view import flat_config, preview_step, previews

TB_DIR = "tensorboard"


class TensorBoard:
    def __init__(self, run_dir: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir, self.config = run_dir, config
        self.writer = SummaryWriter(log_dir=str(run_dir / TB_DIR))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")
        self.last: dict[str, float] = {}
        self.shown: set[str] = set()

    def log(self, values: dict[str, float], step: int, wall: float | None) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, global_step=step, walltime=wall)
        self.last.update(values)
        self._previews()
        self.writer.flush()  # rows are seconds apart: readers see each one at once

    def _previews(self) -> None:
        import numpy as np
        from PIL import Image

        for p in previews(self.run_dir):
            if p.name not in self.shown:
                self.shown.add(p.name)
                img = np.asarray(Image.open(p).convert("RGB"))
                self.writer.add_image("previews", img, global_step=preview_step(p), dataformats="HWC")

    def close(self, state: str) -> None:
        from torch.utils.tensorboard.summary import hparams

        self._previews()
        hp = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat_config(self.config).items()
              if v is not None}
        # the summaries themselves: SummaryWriter.add_hparams would also add each metric again at step 0
        for summary in hparams(hp, dict(self.last)):
            self.writer.file_writer.add_summary(summary)
        self.writer.close()
