"""The one in-memory image container every part of the lab passes around."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

REAL = "real"


@dataclass
class ImageSet:
    """Images as uint8 ``(N, C, H, W)``, integer labels, and per-image provenance.

    ``provenance[i]`` is ``"real"`` or the name of the generator that made image i
    (``"mixup"``, ``"cfg@w=7.5"``, ...). ``soft_labels`` is ``(N, num_classes)`` float
    when some images carry mixed labels (inter-class Mixup/CutMix); hard-labelled
    images then hold a one-hot row. ``labels`` is always the arg-max class.
    """

    images: torch.Tensor  # uint8 (N, C, H, W), values 0..255
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]
    provenance: np.ndarray = field(default=None)  # str (N,)
    soft_labels: torch.Tensor | None = None  # float32 (N, num_classes) or None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N,C,H,W), got {self.images.dtype} {tuple(self.images.shape)}")
        self.labels = self.labels.to(torch.int64)
        if len(self.labels) != len(self.images):
            raise ValueError("images and labels differ in length")
        if self.provenance is None:
            self.provenance = np.full(len(self.images), REAL, dtype=object)
        self.provenance = np.asarray(self.provenance, dtype=object)

    # -- shape ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def counts_by_provenance(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for name in dict.fromkeys(self.provenance.tolist()):
            mask = torch.from_numpy(self.provenance == name)
            out[name] = torch.bincount(self.labels[mask], minlength=self.num_classes).tolist()
        return out

    # -- selection -----------------------------------------------------------------
    def subset(self, index: torch.Tensor | np.ndarray | list[int]) -> "ImageSet":
        index = torch.as_tensor(index, dtype=torch.int64)
        return ImageSet(
            images=self.images[index],
            labels=self.labels[index],
            classes=list(self.classes),
            provenance=self.provenance[index.numpy()],
            soft_labels=None if self.soft_labels is None else self.soft_labels[index],
        )

    def of_class(self, c: int) -> "ImageSet":
        return self.subset(torch.nonzero(self.labels == c).flatten())

    def real_only(self) -> "ImageSet":
        return self.subset(np.nonzero(self.provenance == REAL)[0])

    def soft_or_onehot(self) -> torch.Tensor:
        if self.soft_labels is not None:
            return self.soft_labels
        return torch.nn.functional.one_hot(self.labels, self.num_classes).float()

    @staticmethod
    def concat(parts: list["ImageSet"]) -> "ImageSet":
        parts = [p for p in parts if p is not None]
        if not parts:
            raise ValueError("nothing to concatenate")
        classes = parts[0].classes
        any_soft = any(p.soft_labels is not None for p in parts)
        return ImageSet(
            images=torch.cat([p.images for p in parts]),
            labels=torch.cat([p.labels for p in parts]),
            classes=list(classes),
            provenance=np.concatenate([p.provenance for p in parts]),
            soft_labels=torch.cat([p.soft_or_onehot() for p in parts]) if any_soft else None,
        )


@dataclass
class LoadedDataset:
    """A dataset's train and test splits (and the judge and validation splits, when reserved) plus what was skipped while reading it."""

    name: str
    train: ImageSet
    test: ImageSet
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    source: str = ""  # where it came from, for provenance in run configs
    judge: ImageSet | None = None  # images reserved for the judge CNN, out of train before any profile (DataConfig.judge_per_class)
    validation: ImageSet | None = None  # images reserved for validation (budget curves, convergence), out of train before any profile

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    @property
    def image_size(self) -> int:
        return self.train.image_size

    @property
    def channels(self) -> int:
        return self.train.channels
