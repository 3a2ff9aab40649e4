"""Callbacks: how a plain training/generation function talks to whoever runs it.

The CLI passes printing callbacks, the job manager passes ones that update the run's
status and the page's progress bar, tests pass recorders. Functions that accept a
``Callbacks`` never start threads and never import Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass
class Callbacks:
    on_metrics: Callable[[dict[str, Any]], None] | None = None  # every metrics row ({"step": ..., "loss": ...})
    on_preview: Callable[[Path], None] | None = None  # path of a newly written preview PNG
    on_progress: Callable[[int, int, str], None] | None = None  # (done, total, message)
    should_stop: Callable[[], bool] | None = None  # polled between steps; True = stop cleanly

    def metrics(self, row: dict[str, Any]) -> None:
        if self.on_metrics:
            self.on_metrics(row)

    def preview(self, path: Path) -> None:
        if self.on_preview:
            self.on_preview(path)

    def progress(self, done: int, total: int, message: str = "") -> None:
        if self.on_progress:
            self.on_progress(done, total, message)

    def stop_requested(self) -> bool:
        return bool(self.should_stop and self.should_stop())
