"""Optional filtering of generated images by a reference classifier.

A generated image is kept only when the reference classifier (anything with
``predict(images_uint8) -> labels``, e.g. :class:`core.metrics.judge.Judge`) assigns it to the
class it was prompted for. The paper does not filter; He et al. (2023, "Is synthetic data
from generative models ready for image recognition?") and DiffuLT (Shao et al. 2024) find
that dropping off-class samples helps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from core.data.imageset import ImageSet
from core.errors import ConfigError


@dataclass
class FilterStats:
    """Candidates examined for one class and why the rejected ones were dropped."""

    candidates: int = 0  # images generated and examined
    accepted: int = 0  # kept (may exceed the request: extras of the last batch are dropped)
    rejected_class: int = 0  # the reference classifier assigned another class
    rejected_nsfw: int = 0  # blacked out by the pipeline's safety checker (when enabled)

    @property
    def rejected(self) -> int:
        return self.rejected_class + self.rejected_nsfw

    @property
    def rejection_rate(self) -> float:
        return self.rejected / self.candidates if self.candidates else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "rejected": self.rejected, "rejection_rate": round(self.rejection_rate, 4)}


class FilterShortfall(ConfigError):
    """Too few candidates passed the filter within the attempt budget.

    ``accepted`` holds the images that did pass (nothing made is thrown away).
    """

    def __init__(self, problem: str, fix: str, accepted: ImageSet, stats: FilterStats):
        super().__init__(problem, fix)
        self.accepted = accepted
        self.stats = stats


def accepts(classifier: Any, images: torch.Tensor, class_idx: int) -> torch.Tensor:
    """Bool mask (N,): the classifier's label for each uint8 image equals ``class_idx``."""
    if len(images) == 0:
        return torch.zeros(0, dtype=torch.bool)
    labels = classifier.predict(images)
    labels = torch.as_tensor(np.asarray(labels.cpu() if torch.is_tensor(labels) else labels)).flatten()
    if len(labels) != len(images):
        raise ConfigError(
            f"The filter classifier returned {len(labels)} labels for {len(images)} images.",
            "Pass a classifier whose predict(images) returns one class index per image.",
        )
    return labels.to(torch.int64) == int(class_idx)
