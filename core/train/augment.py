"""Batched on-device augmentation of uint8 image tensors: random crop + flip + normalise.

The whole training set lives on the device as one uint8 tensor; every batch is
augmented there in a few tensor ops instead of being decoded and transformed image by
image through PIL in DataLoader workers (which cannot keep a GPU ResNet busy).

torchvision.transforms.v2 ``RandomCrop``/``RandomHorizontalFlip`` draw *one* crop
offset / flip decision per call, i.e. per batch when given a batch, so per-image
randomness would need a Python loop over images. Here each image gets its own offset
and flip in one gather: out[n, :, i, j] = padded[n, :, oy_n + i, ox_n + (j or W−1−j)].
On a CPU, run it with few intra-op threads: at this op size, 2 threads contending with
other work were measured 28x slower than 1 (see bench/data_pipeline.py).

Training-time MixUp/CutMix use torchvision.transforms.v2 (see :class:`BatchMix`).
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from core.errors import ConfigError


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = images.float().div_(255.0)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()


class BatchAugment:
    """Random crop with zero padding, optional horizontal flip, normalisation.

    ``pad``: pixels of padding each side (the crop offset is uniform in [0, 2·pad]);
    ``flip``: mirror each image with probability 1/2 (off for digits, where a mirrored
    digit is a different glyph); ``mean``/``std``: per channel, in [0, 1] units.
    """

    def __init__(self, mean: list[float], std: list[float], pad: int = 4, flip: bool = True):
        self.pad, self.flip = int(pad), bool(flip)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N,C,H,W) -> float32 (x/255 − mean)/std, computed as x·a + b in two passes."""
        scale = (1.0 / (255.0 * self.std)).to(images.device)
        shift = (-self.mean / self.std).to(images.device)
        return images.float().mul_(scale).add_(shift)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a uint8 batch on its own device; returns normalised float32."""
        n, c, h, w = images.shape
        dev, p = images.device, self.pad
        x = torch.nn.functional.pad(images, (p, p, p, p)) if p else images
        wp = w + 2 * p
        oy = torch.randint(0, 2 * p + 1, (n,), device=dev, generator=generator)
        ox = torch.randint(0, 2 * p + 1, (n,), device=dev, generator=generator)
        ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
        cols = ar_w.expand(n, w)
        if self.flip:
            flip = torch.rand(n, device=dev, generator=generator) < 0.5
            cols = torch.where(flip[:, None], (w - 1 - ar_w).expand(n, w), cols)
        rows = oy[:, None] + ar_h  # (n, h) source rows
        cols = ox[:, None] + cols  # (n, w) source columns (mirrored where flipped)
        # one gather over the flattened padded plane: index = row·W_pad + col, shared by all channels
        idx = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
        out = x.reshape(n, c, -1).gather(2, idx).view(n, c, h, w)
        return self.normalise(out)


class BatchMix:
    """torchvision v2 MixUp or CutMix on a batch whose targets are probability vectors.

    v2.MixUp/CutMix only accept integer labels. Calling them with labels = arange(B)
    and num_classes = B returns the batch's mixing matrix M (row i = the weights of
    the images mixed into image i), so soft targets mix as Y' = M·Y (the same
    y = λ·y_a + (1−λ)·y_b the transforms apply to one-hot labels).
    """

    def __init__(self, kind: str, alpha: float = 1.0):
        if kind not in ("mixup", "cutmix"):
            raise ConfigError(f"Unknown training-time mix '{kind}'.", "Use 'none', 'mixup' or 'cutmix'.")
        if alpha <= 0:
            raise ConfigError(f"Mix alpha {alpha} must be positive.", "Use e.g. 1.0.")
        self.kind, self.alpha = kind, float(alpha)

    def __call__(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = len(x)
        if b < 2:
            return x, targets
        t = (v2.MixUp if self.kind == "mixup" else v2.CutMix)(alpha=self.alpha, num_classes=b)
        x, m = t(x, torch.arange(b, device=x.device))
        return x, m.to(targets.dtype) @ targets
