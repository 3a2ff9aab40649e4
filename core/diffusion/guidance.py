"""Classifier-free guidance (the paper's Eq. 8; Ho & Salimans 2022, Eq. 6).

    ε̃(x_t, c) = (1 + w)·ε(x_t, c) − w·ε(x_t)

w is the paper's guidance strength: w = 0 is plain conditional sampling, the paper
uses w = 0.1 and w = 7.5. diffusers pipelines call 1 + w the ``guidance_scale``
(ε̃ = ε(x) + s·(ε(x,c) − ε(x)), the same formula with s = 1 + w).

The conditional and unconditional branches share one network (the null label is the
last class embedding) and go through it as **one** batched forward pass of 2B images.
"""

from __future__ import annotations

from typing import Callable

import torch

from core.errors import ConfigError

# model(x, t, labels) -> ε prediction of x's shape
EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def check_w(w: float) -> float:
    try:
        w = float(w)
    except (TypeError, ValueError):
        raise ConfigError(f"Guidance strength w={w!r} is not a number.", "Pass a number >= 0 (paper: 0.1 or 7.5).") from None
    if not w >= 0.0 or w == float("inf"):
        raise ConfigError(
            f"Guidance strength w={w} must be a finite number >= 0 (w = 0 is plain conditional sampling).",
            "Use w >= 0, e.g. the paper's 0.1 or 7.5 (diffusers' guidance_scale = 1 + w).",
        )
    return w


def per_class_w(w: float, counts: list[int], w_per_class: list[float] | None = None, w_gamma: float = 0.0,
                w_max: float | None = None) -> list[float]:
    """One guidance strength per class, for tail-aware sampling (the paper uses one w for all).

    ``w_per_class`` given: those values. Otherwise w_c = w·(n_max/n_c)^γ (γ = ``w_gamma``; γ = 0
    is the plain w everywhere), capped at ``w_max``: the fewer training images, the stronger."""
    C = len(counts)
    if w_per_class is not None:
        if len(w_per_class) != C:
            raise ConfigError(f"w_per_class has {len(w_per_class)} values but the model has {C} classes.", f"Give exactly {C} comma-separated values, one per class.")
        return [check_w(v) for v in w_per_class]
    w = check_w(w)
    try:
        gamma = float(w_gamma)
    except (TypeError, ValueError):
        gamma = float("nan")
    if not (gamma >= 0 and gamma != float("inf")):
        raise ConfigError(f"w_gamma={w_gamma!r} must be a finite number >= 0.", "Use e.g. 0.5 (0 = the same w for every class).")
    if w_max is not None:
        w_max = check_w(w_max)
    if any(int(n) < 1 for n in counts):
        raise ConfigError("Every class needs at least one training image for w_gamma.", "Use w_per_class instead.")
    n_max = max(int(n) for n in counts)
    out = [w * (n_max / int(n)) ** gamma for n in counts]
    return [min(v, w_max) if w_max is not None else v for v in out]


def guidance_scale(w: float) -> float:
    """diffusers' guidance_scale for the paper's w."""
    return 1.0 + w


def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float | torch.Tensor) -> torch.Tensor:
    """Eq. 8: ε̃ = (1+w)·ε(x,c) − w·ε(x). ``w`` is a number or one value per image (B,)."""
    if isinstance(w, torch.Tensor) and w.ndim == 1:
        w = w.to(eps_cond.dtype).view(-1, *([1] * (eps_cond.ndim - 1)))
    return (1 + w) * eps_cond - w * eps_uncond


def cfg_eps(
    eps_fn: EpsFn,
    x: torch.Tensor,
    t: torch.Tensor,
    labels: torch.Tensor,
    w: float | torch.Tensor,
    null_label: int,
    batched: bool = True,
) -> torch.Tensor:
    """Guided ε for a batch ``x`` of B images with class ``labels`` (B,).

    ``batched=True`` runs [x; x] with [labels; null] through the network once;
    ``batched=False`` makes two passes (kept for the side-by-side benchmark). When
    every w is 0, Eq. 8 reduces to ε(x, c) exactly and only the conditional pass runs.
    """
    if not isinstance(w, torch.Tensor) and w == 0:
        return eps_fn(x, t, labels)
    if isinstance(w, torch.Tensor) and not bool(w.ne(0).any()):
        return eps_fn(x, t, labels)
    null = torch.full_like(labels, null_label)
    if batched:
        eps = eps_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
        eps_cond, eps_uncond = eps.chunk(2)
    else:
        eps_cond, eps_uncond = eps_fn(x, t, labels), eps_fn(x, t, null)
    return guided_eps(eps_cond, eps_uncond, w)
