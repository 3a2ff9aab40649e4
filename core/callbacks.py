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


class ProgressBar:
    """An ``on_progress`` for the CLI: a tqdm bar on stderr; a new total starts a new bar.

    ``write`` prints a line above the bar without breaking it. ``disable`` (``-q``) draws
    nothing. tqdm is imported on first use, so importing this module stays cheap."""

    def __init__(self, desc: str = "", unit: str = "it", disable: bool = False):
        self.desc, self.unit, self.disable = desc, unit, disable
        self.bar = None

    def __call__(self, done: int, total: int, message: str = "") -> None:
        from tqdm import tqdm

        if self.bar is None or self.bar.total != total:
            self.close()
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, disable=self.disable, dynamic_ncols=True, leave=False)
        self.bar.update(max(0, int(done) - self.bar.n))
        if message:
            self.bar.set_postfix_str(message, refresh=False)
        if done >= total:
            self.close()

    def write(self, text: str, file=None) -> None:
        from tqdm import tqdm

        tqdm.write(text, file=file)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
