"""Baseline balancers that reuse real minority images: none, oversample, Mixup, CutMix.

torchvision.transforms.v2 ``MixUp``/``CutMix`` mix a training *batch* with its roll and
one λ ~ Beta(α) per call; they have no fixed λ (the paper's 0.6), no intra-class
pairing, no per-image λ and no seeded generator, which balancing needs. So the two
formulas below are written out here; the classifier trainer uses the v2 transforms as
training-time augmentation, where they fit.

Mixup (Zhang et al. 2018):  x = λ·x_a + (1−λ)·x_b,  y = λ·y_a + (1−λ)·y_b
CutMix (Yun et al. 2019):   x = M⊙x_a + (1−M)⊙x_b with a box of area (1−λ)·H·W,
                            y = λ'·y_a + (1−λ')·y_b, λ' the exact kept area.

``pairing="intra"`` (default) mixes two images of the same minority class: the label
stays hard. ``pairing="inter"`` mixes the minority image with one of another class and
stores the soft label; λ is folded to max(λ, 1−λ) so the minority class stays dominant.
"""

from __future__ import annotations

import math

import torch

from core.data.imageset import ImageSet
from core.errors import ConfigError, DataError
from core.generators.base import Generator, Progress, ShouldStop


class _FromReal(Generator):
    def __init__(self, train: ImageSet):
        super().__init__(train.classes, train.channels, train.image_size)
        self.train = train.real_only()

    def _pool(self, c: int) -> torch.Tensor:
        idx = torch.nonzero(self.train.labels == c).flatten()
        if len(idx) == 0:
            raise DataError(f"Class '{self.classes[c]}' has no real images to build on.", "Keep at least one image per class in the profile.")
        return idx

    def _rng(self, seed: int, c: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed * 1_000_003 + c)


class NoneGenerator(_FromReal):
    """Adds nothing: ``balance`` with it returns the imbalanced set unchanged."""

    name = "none"

    def generate(self, class_idx, n, seed=0, progress: Progress = None, should_stop: ShouldStop = None) -> ImageSet:
        self.check_request(class_idx, n)
        return self.wrap(self.train.images[:0], class_idx)


class OversampleGenerator(_FromReal):
    """Random duplication: each pass over the class is a fresh permutation."""

    name = "oversample"

    def generate(self, class_idx, n, seed=0, progress: Progress = None, should_stop: ShouldStop = None) -> ImageSet:
        self.check_request(class_idx, n)
        pool, g = self._pool(class_idx), self._rng(seed, class_idx)
        reps = math.ceil(n / len(pool))
        order = torch.cat([pool[torch.randperm(len(pool), generator=g)] for _ in range(reps)])[:n]
        if progress:
            progress(n, n)
        return self.wrap(self.train.images[order].clone(), class_idx)


class _Mixing(_FromReal):
    def __init__(self, train: ImageSet, lam: float | None = 0.6, alpha: float | None = None, pairing: str = "intra"):
        super().__init__(train)
        if pairing not in ("intra", "inter"):
            raise ConfigError(f"Unknown pairing '{pairing}'.", "Use 'intra' (same class, hard label) or 'inter' (other class, soft label).")
        if alpha is None and (lam is None or not 0.0 < lam < 1.0):
            raise ConfigError(f"λ={lam} must be strictly between 0 and 1.", "Use the paper's 0.6, or set alpha to sample λ ~ Beta(α, α).")
        if alpha is not None and alpha <= 0:
            raise ConfigError(f"alpha={alpha} must be positive.", "Use e.g. 1.0.")
        if pairing == "inter" and len(set(self.train.labels.tolist())) < 2:
            raise DataError("Inter-class mixing needs at least two classes with images.", "Use pairing='intra'.")
        self.lam, self.alpha, self.pairing = (None if alpha is not None else lam), alpha, pairing

    def describe(self) -> dict:
        return {"name": self.name, "lam": self.lam, "alpha": self.alpha, "pairing": self.pairing}

    def _pairs(self, c: int, n: int, g: torch.Generator):
        pool = self._pool(c)
        a = pool[torch.randint(len(pool), (n,), generator=g)]
        if self.pairing == "intra":
            b = pool[torch.randint(len(pool), (n,), generator=g)]
            if len(pool) > 1:  # never mix an image with itself
                same = a == b
                while same.any():
                    b[same] = pool[torch.randint(len(pool), (int(same.sum()),), generator=g)]
                    same = a == b
        else:
            others = torch.nonzero(self.train.labels != c).flatten()
            b = others[torch.randint(len(others), (n,), generator=g)]
        if self.alpha is None:
            lam = torch.full((n,), float(self.lam))
        else:
            beta = torch.distributions.Beta(self.alpha, self.alpha)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(2**31, (1,), generator=g)))
                lam = beta.sample((n,))
            if self.pairing == "inter":
                lam = torch.maximum(lam, 1 - lam)
        return a, b, lam

    def _soft(self, c: int, b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor | None:
        if self.pairing == "intra":
            return None
        C = len(self.classes)
        ya = torch.nn.functional.one_hot(torch.full_like(b, c), C).float()
        yb = torch.nn.functional.one_hot(self.train.labels[b], C).float()
        return lam[:, None] * ya + (1 - lam[:, None]) * yb

    def generate(self, class_idx, n, seed=0, progress: Progress = None, should_stop: ShouldStop = None) -> ImageSet:
        self.check_request(class_idx, n)
        g = self._rng(seed, class_idx)
        a, b, lam = self._pairs(class_idx, n, g)
        images, lam = self._mix(self.train.images[a], self.train.images[b], lam, g)
        if progress:
            progress(n, n)
        return self.wrap(images, class_idx, self._soft(class_idx, b, lam))


class MixupGenerator(_Mixing):
    name = "mixup"

    def _mix(self, xa, xb, lam, g):
        l = lam.view(-1, 1, 1, 1)
        mixed = l * xa.float() + (1 - l) * xb.float()
        return mixed.round().clamp(0, 255).to(torch.uint8), lam


class CutMixGenerator(_Mixing):
    name = "cutmix"

    def _mix(self, xa, xb, lam, g):
        n, _, H, W = xa.shape
        out = xa.clone()
        kept = torch.empty(n)
        for i in range(n):
            side = math.sqrt(1.0 - float(lam[i]))
            h, w = min(H, max(1, round(H * side))), min(W, max(1, round(W * side)))
            top = int(torch.randint(H - h + 1, (1,), generator=g))
            left = int(torch.randint(W - w + 1, (1,), generator=g))
            out[i, :, top : top + h, left : left + w] = xb[i, :, top : top + h, left : left + w]
            kept[i] = 1.0 - (h * w) / (H * W)  # the exact share of pixels from x_a
        return out, kept


BASELINES = {"none": NoneGenerator, "oversample": OversampleGenerator, "mixup": MixupGenerator, "cutmix": CutMixGenerator}
