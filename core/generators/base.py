"""The generator interface shared by baselines, the CFG diffusion model and Stable Diffusion.

A generator makes ``n`` images of one class from a seed::

    gen.generate(class_idx=3, n=100, seed=0) -> ImageSet  # uint8, labels all 3

``progress(done, total)`` is called as images are made and ``should_stop()`` is polled
between batches (generation then raises :class:`Cancelled`, and nothing partial is
returned). The same (class, n, seed) always gives the same images.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import numpy as np
import torch

from core.data.imageset import ImageSet
from core.errors import Cancelled, ConfigError  # noqa: F401  (re-exported for callers)

Progress = Callable[[int, int], None] | None
ShouldStop = Callable[[], bool] | None

class Generator(ABC):
    name: str = "generator"  # provenance label written next to every image it makes

    def __init__(self, classes: list[str], channels: int, image_size: int):
        self.classes = list(classes)
        self.channels = channels
        self.image_size = image_size

    @abstractmethod
    def generate(self, class_idx: int, n: int, seed: int = 0, progress: Progress = None, should_stop: ShouldStop = None) -> ImageSet:
        ...

    def describe(self) -> dict:
        """Parameters that reproduce this generator's output (written to params.json)."""
        return {"name": self.name}

    # -- helpers for implementations ----------------------------------------------
    def check_request(self, class_idx: int, n: int) -> None:
        if not isinstance(class_idx, (int, np.integer)) or not 0 <= class_idx < len(self.classes):
            raise ConfigError(
                f"Unknown class {class_idx!r}: this dataset has {len(self.classes)} classes (0..{len(self.classes) - 1}).",
                "Pick a class index from the dataset's class list.",
            )
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise ConfigError(f"Image count n={n} must be a positive integer.", "Ask for at least 1 image.")

    def wrap(self, images: torch.Tensor, class_idx: int, soft_labels: torch.Tensor | None = None) -> ImageSet:
        return ImageSet(
            images=images,
            labels=torch.full((len(images),), class_idx, dtype=torch.int64),
            classes=self.classes,
            provenance=np.full(len(images), self.name, dtype=object),
            soft_labels=soft_labels,
        )


def resolve_class(spec: str | int, classes: list[str]) -> int:
    """A class given by index or by name -> its index, with a clear error."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().lstrip("-").isdigit()):
        idx = int(spec)
        if 0 <= idx < len(classes):
            return idx
    elif spec in classes:
        return classes.index(spec)
    raise ConfigError(f"Unknown class {spec!r}.", f"Use an index 0..{len(classes) - 1} or one of: {', '.join(classes)}.")


def image_seed(seed: int, class_idx: int, j: int) -> int:
    """The seed of image j of a class: independent of batch size and of other classes."""
    return (seed * 1_000_003 + class_idx * 10_007 + j) % (2**63 - 1)
