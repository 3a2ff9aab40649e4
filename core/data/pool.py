"""The real-image pool (issue 25): the training images a profile dropped, split in two.

A perfect generator would produce exactly the images the profile dropped, so a row trained on
them (the ``real`` fill) is the bound every method is measured against. The same images are the
only real ones a generator never saw, so they also calibrate the novelty rule and the generator
gate. Both uses must not share an image, so each class's dropped images are split by a fixed
stream of their own (the subset seed and the class)::

    held-out (calibration) part   the first h_c = min(calibration_per_class, ⌊d_c / 2⌋) of the
                                  class's d_c dropped images: novelty's held-out reals, the gate's
                                  real figures
    fill part                     the other d_c − h_c: what ``real`` tops the class up with

Everything here lies inside the train split left after the judge and validation splits
(core.data.loading), so neither part meets the judge split, the validation split or the test set.
"""

from __future__ import annotations

import numpy as np
import torch

from core.data.imageset import ImageSet

CALIBRATION_PER_CLASS = 200  # at most this many dropped images per class calibrate (the rest fill); never more than half


def split_pool(dropped: ImageSet, seed: int, calibration_per_class: int = CALIBRATION_PER_CLASS) -> tuple[ImageSet, ImageSet]:
    """(held-out part, fill part) of the dropped images, per class as the module docstring says."""
    held, fill = [], []
    for c in range(dropped.num_classes):
        idx = torch.nonzero(dropped.labels == c).flatten().numpy()
        idx = idx[np.random.default_rng([int(seed), c, *b"real-pool"]).permutation(len(idx))]
        h = min(int(calibration_per_class), len(idx) // 2)
        held.append(idx[:h])
        fill.append(idx[h:])
    take = lambda parts: dropped.subset(torch.sort(torch.from_numpy(np.concatenate(parts).astype(np.int64))).values)  # noqa: E731
    return take(held), take(fill)


def real_fill(imbalanced: ImageSet, fill_part: ImageSet, target: int) -> tuple[ImageSet, list[int], list[int]]:
    """(the real images that top each class up towards ``target``, images used per class, images
    wanted per class): class c takes the first min(target − n_c, its fill part) images of the fill
    part, in their stored order. Provenance stays "real": they are real images."""
    want = [max(0, int(target) - n) for n in imbalanced.counts()]
    keep, used = [], []
    for c, k in enumerate(want):
        idx = torch.nonzero(fill_part.labels == c).flatten()[:k]
        keep.append(idx)
        used.append(int(len(idx)))
    return fill_part.subset(torch.sort(torch.cat(keep)).values), used, want
