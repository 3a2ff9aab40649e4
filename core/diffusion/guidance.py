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
