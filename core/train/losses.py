"""Classifier losses for long-tailed training sets, and the post-hoc logit adjustment.

Each loss uses the class counts n_c of the set it trains on (after any fill), C classes,
N = Σ_c n_c images, class prior π_c = n_c / N. Targets y are soft (one-hot for real images,
mixed for Mixup/CutMix images), so every formula is written for a soft label y_i.

* ``ce``            ℓ_i = −Σ_c ỹ_ic·log softmax(z_i)_c (ỹ: y with label smoothing ε)
* ``reweight``      class-balanced loss, Cui et al. 2019 ("Class-Balanced Loss Based on the
                    Effective Number of Samples", Eq. 3 and §4): the effective number of class
                    c is E_c = (1 − β^n_c)/(1 − β); its weight w_c ∝ 1/E_c = (1 − β)/(1 − β^n_c),
                    normalised so that Σ_c w_c = C. Image i weighs ω_i = Σ_c y_ic·w_c and
                    contributes ω_i·ℓ_i (ℓ_i the cross-entropy above).
* ``logit-adjust``  logit-adjusted cross-entropy, Menon et al. 2021 ("Long-tail learning via
                    logit adjustment", Eq. 10): ℓ_i = −Σ_c ỹ_ic·log softmax(z_i + τ·log π)_c.
                    At τ = 1 this is the balanced softmax (Ren et al. 2020).
* post-hoc          Menon et al. §4, Eq. 8: predict argmax_c (z_c − τ·log π_c) with the logits z
                    of a model trained with plain cross-entropy, without retraining.

Reduction (the same for every loss): with s_i the per-image weight of the set (1 for real
images, ``synthetic_weight`` for generated ones) and ω_i the class-balanced weight (1 unless
``reweight``), the batch loss is Σ_i s_i·ω_i·ℓ_i / Σ_i s_i: the weighted losses summed and
divided by the (synthetic-weighted) batch size, as in Cui et al.'s reference code. It is
*not* divided by Σ ω_i, which would undo most of the reweighting within a batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.errors import ConfigError

LOSSES = {
    "ce": "cross-entropy",
    "reweight": "class-balanced cross-entropy (Cui et al. 2019, effective number, β)",
    "logit-adjust": "logit-adjusted cross-entropy (Menon et al. 2021, τ)",
}
REDUCTION = "sum_i s_i*w_i*loss_i / sum_i s_i (batch mean of the class-weighted losses; s_i = synthetic_weight)"


def class_balanced_weights(counts: list[int], beta: float = 0.9999) -> torch.Tensor:
    """w_c = (1 − β)/(1 − β^n_c), rescaled so that Σ_c w_c = C (Cui et al. 2019, Eq. 3)."""
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"cb_beta={beta} must be in [0, 1).", "Use 0.9999 (Cui et al.'s default for CIFAR-LT).")
    n = torch.tensor([float(max(int(c), 0)) for c in counts], dtype=torch.float64)
    if (n <= 0).any():
        raise ConfigError("Class-balanced weights need at least one image of every class.", "Fill or keep at least one image per class.")
    # 1 − β^n computed as −expm1(n·log β) for accuracy when β is close to 1
    eff = -torch.expm1(n * math.log(beta)) / (1.0 - beta) if beta > 0 else torch.ones_like(n)
    w = 1.0 / eff
    return (w * len(counts) / w.sum()).float()


def log_prior(counts: list[int]) -> torch.Tensor:
    """log π_c = log(n_c / N)."""
    n = torch.tensor([float(c) for c in counts], dtype=torch.float64)
    if (n <= 0).any():
        raise ConfigError("Logit adjustment needs at least one image of every class (log π_c of an empty class is −∞).",
                          "Fill or keep at least one image per class.")
    return torch.log(n / n.sum()).float()


class ClassifierLoss:
    """The training loss of one run: ``loss(logits, soft_targets, sample_weights, hard_targets)``."""

    def __init__(self, name: str, counts: list[int], beta: float = 0.9999, tau: float = 1.0, label_smoothing: float = 0.0):
        if name not in LOSSES:
            raise ConfigError(f"Unknown loss '{name}'.", f"Choose one of: {', '.join(LOSSES)}.")
        self.name, self.label_smoothing = name, float(label_smoothing)
        self.class_weights = class_balanced_weights(counts, beta) if name == "reweight" else None
        self.shift = float(tau) * log_prior(counts) if name == "logit-adjust" else None

    def to(self, device) -> "ClassifierLoss":
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device)
        if self.shift is not None:
            self.shift = self.shift.to(device)
        return self

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        z = logits if logits.dtype == torch.float64 else logits.float()  # bf16 logits are upcast; fp64 runs stay fp64
        if self.shift is not None:
            z = z + self.shift  # Menon et al. Eq. 10: softmax(z + τ·log π)
        per_image = F.cross_entropy(z, targets.to(z.dtype), reduction="none", label_smoothing=self.label_smoothing)
        s = weights
        if self.class_weights is not None:
            weights = weights * (targets.float() @ self.class_weights)  # ω_i = Σ_c y_ic·w_c (Cui et al.)
        return (weights * per_image).sum() / s.sum().clamp_min(1e-12)


def adjusted_logits(logits: torch.Tensor, counts: list[int], tau: float = 1.0) -> torch.Tensor:
    """z_c − τ·log π_c (Menon et al. 2021, §4, Eq. 8), before the argmax."""
    return logits.float() - float(tau) * log_prior(counts).to(logits.device)


def posthoc_adjust(logits: torch.Tensor, counts: list[int], tau: float = 1.0) -> torch.Tensor:
    """Predictions argmax_c (z_c − τ·log π_c) (Menon et al. 2021, §4, Eq. 8)."""
    return adjusted_logits(logits, counts, tau).argmax(-1)
