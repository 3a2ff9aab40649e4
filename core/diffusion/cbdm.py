"""The CBDM regulariser (Qin et al. 2023, "Class-Balancing Diffusion Models", CVPR).

CBDM pulls the conditional prediction for the true class y towards the prediction for a
class y' drawn from a target distribution q(y'), at the same x_t and t, more strongly at
larger t (the regularised objective of Sec. 3, with the reference code's stop-gradient split):

    L = L_simple + E_{y' ~ q} [ (t/T)·τ · ‖ε_θ(x_t, y) − sg(ε_θ(x_t, y'))‖²            (regulariser)
                              + ¼ · (t/T)·τ · ‖sg(ε_θ(x_t, y)) − ε_θ(x_t, y')‖² ]      (commitment)

sg = stop-gradient. The first term's gradient reaches only the conditional branch ε_θ(x_t, y),
the ¼ commitment term's only the y' branch. q is the training class frequencies (``train``,
what the reference code uses when training from scratch) or uniform (``uniform``, its
fine-tuning mode). Samples whose label was dropped for classifier-free guidance (they train
the unconditional ε_θ(x_t)) take no regulariser. ‖·‖² is the mean over pixels, like the
simple loss, and the batch mean counts dropped samples as zeros.
"""

from __future__ import annotations

import torch

from core.errors import ConfigError

CBDM_TARGETS = ("train", "uniform")
COMMITMENT = 0.25  # the ¼ weight of the commitment term


def check_cbdm(tau: float, target: str) -> None:
    if not (isinstance(tau, (int, float)) and tau >= 0 and tau != float("inf")):
        raise ConfigError(f"cbdm_tau={tau!r} must be a finite number >= 0 (0 = CBDM off).", "Use e.g. --cbdm-tau 1 (the CBDM paper's CIFAR setting is about 1), or 0 to turn it off.")
    if target not in CBDM_TARGETS:
        raise ConfigError(f"Unknown cbdm_target '{target}'.", f"Choose one of: {', '.join(CBDM_TARGETS)} (train = the training class frequencies, as the reference code).")


def draw_targets(counts: torch.Tensor, n: int, target: str, generator: torch.Generator) -> torch.Tensor:
    """n classes y' ~ q: the training frequencies (``train``) or uniform over present classes (``uniform``)."""
    counts = counts.detach().cpu().double()
    probs = counts if target == "train" else (counts > 0).double()
    return torch.multinomial(probs / probs.sum(), n, replacement=True, generator=generator)


def cbdm_terms(eps_cond: torch.Tensor, eps_target: torch.Tensor, t: torch.Tensor, T: int, tau: float,
               keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(regulariser, commitment) batch means, unweighted by the ¼: see the module docstring.

    ``eps_cond`` = ε_θ(x_t, y), ``eps_target`` = ε_θ(x_t, y'), ``t`` (B,) timesteps,
    ``keep`` (B,) bool: False for samples whose label was dropped (no regulariser)."""
    weight = t.to(eps_cond.dtype) / T * tau  # (t/T)·τ per sample
    if keep is not None:
        weight = weight * keep.to(eps_cond.dtype)
    dims = tuple(range(1, eps_cond.ndim))
    reg = ((eps_cond - eps_target.detach()) ** 2).mean(dim=dims)
    com = ((eps_cond.detach() - eps_target) ** 2).mean(dim=dims)
    return (weight * reg).mean(), (weight * com).mean()


def cbdm_regulariser(eps_cond: torch.Tensor, eps_target: torch.Tensor, t: torch.Tensor, T: int, tau: float,
                     keep: torch.Tensor | None = None) -> torch.Tensor:
    """The term CBDM adds to the simple loss: regulariser + ¼·commitment (0 when τ = 0)."""
    if tau == 0:
        return eps_cond.new_zeros(())
    reg, com = cbdm_terms(eps_cond, eps_target, t, T, tau, keep)
    return reg + COMMITMENT * com
