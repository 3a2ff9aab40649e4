"""The gate of one fill and seed, calibrated on real images (issue 25 item 2; the rule is core.study.gate's).

Per seed, the images the profile dropped are split (core.data.pool) into a held-out part and the
part `real` fills with. The held-out part's tail classes are split again, per class, into halves A
and B by a fixed stream. Then, with the study's one judge and feature extractor::

    tail_consistency        judge accuracy on the fill's tail images
    precision               precision of the fill's tail images against half B (k-NN manifold, k = 3)
    real_tail_consistency   judge accuracy on the held-out real tail images (A and B)
    real_precision          precision of half A against half B: real images against real images,
                            measured exactly as the fill is
    near_copy_rate          the fill's tail near-copy rate (core.metrics.novelty, against the held-out part)

so the `real` fill (the other part) is measured like any generator, against the same bar.
"""

from __future__ import annotations

import numpy as np
import torch

from core.data.imageset import ImageSet
from core.errors import ConfigError


def halves(held: ImageSet, classes: list[int], seed: int) -> tuple[ImageSet, ImageSet]:
    """(A, B): per class c in ``classes``, the held-out images of c split in two by a fixed permutation."""
    a, b = [], []
    for c in classes:
        idx = torch.nonzero(held.labels == c).flatten().numpy()
        idx = idx[np.random.default_rng([int(seed), int(c), *b"gate-halves"]).permutation(len(idx))]
        a.append(idx[: len(idx) // 2])
        b.append(idx[len(idx) // 2:])
    take = lambda parts: held.subset(torch.from_numpy(np.sort(np.concatenate(parts)).astype(np.int64)))  # noqa: E731
    return take(a), take(b)


def _precision(gen_features: np.ndarray, ref_features: np.ndarray) -> float | None:
    from core.metrics.novelty import precision_recall

    try:
        return float(precision_recall(gen_features, ref_features)[0])
    except ConfigError:  # too few images on a side: not measured
        return None


def partial_part(part: ImageSet, counts: list[int], sizes: list[int]) -> ImageSet:
    """The images a partial fill uses: the first k_c − n_c generated images of each class c."""
    keep = [torch.nonzero(part.labels == c).flatten()[: max(0, k - n)] for c, (k, n) in enumerate(zip(sizes, counts))]
    return part.subset(torch.sort(torch.cat(keep)).values)


def measure(generated: ImageSet, held: ImageSet, novelty: dict | None, judge, extractor, t: dict, seed: int) -> dict:
    """The gate's figures of one fill (``generated``: its images only) for one seed; core.study.gate.gate_verdict judges them."""
    from core.study.gate import measure_gate, tail_classes, tail_near_copy_rate
    from core.metrics.judge import class_consistency

    tail = tail_classes(np.bincount(generated.labels.numpy(), minlength=generated.num_classes).tolist(), t["tail_classes"])
    names = [generated.classes[c] for c in tail]
    keep = torch.nonzero(torch.isin(generated.labels, torch.tensor(tail))).flatten()
    gen_tail = generated.subset(keep)
    a, b = halves(held, tail, seed)
    real = ImageSet.concat([a, b])
    ref = extractor.features(b.images) if len(b) else np.zeros((0, 1))
    real_cons = class_consistency(judge, real.images, real.labels) if len(real) else None
    return measure_gate(names, len(keep), class_consistency(judge, gen_tail.images, gen_tail.labels),
                        _precision(extractor.features(gen_tail.images), ref) if len(gen_tail) else None,
                        tail_near_copy_rate((novelty or {}).get("per_class") or {}, names),
                        real_tail_consistency=real_cons, real_precision=_precision(extractor.features(a.images), ref) if len(a) else None,
                        n_real=len(real))
