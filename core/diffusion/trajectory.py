"""One image's denoising trajectory under several guidance strengths, recorded step by step.

The teaching view of guidance (issue 20): for one class and one seed, every value of the
paper's w gets its own column, and the columns differ **only** in guidance. They start from
the same x_T and, for DDPM's stochastic steps, draw the same noise at every step: each
column has its own ``torch.Generator`` seeded with the same seed, so the streams are equal
(diffusers' ``randn_tensor`` draws row i of a batch from generator i).

Like :func:`core.diffusion.samplers.sample` this is a pure function of an ε-network; it
uses the same diffusers schedulers (:func:`make_scheduler`) and the one guidance formula
(:func:`core.diffusion.guidance.guided_eps`, Eq. 8). It keeps its own loop because it needs
both branches at every step, w = 0 included (``cfg_eps`` skips the unconditional pass
there), and records, per step i with timestep t:

    x_t          the sample entering the step (x_T at i = 0)
    eps_cond     ε(x_t, c)
    eps_uncond   ε(x_t)                       (the null label)
    eps_guided   ε̃ = (1+w)·ε(x_t, c) − w·ε(x_t)
    x0_hat       x̂₀ = (x_t − sqrt(1−ᾱ_t)·ε̃) / sqrt(ᾱ_t)
    guidance_norm  ‖w·(ε(x_t, c) − ε(x_t))‖₂ over the image

x̂₀ is the clean image the step's ε̃ implies, from x_t = sqrt(ᾱ_t)·x_0 + sqrt(1−ᾱ_t)·ε
(Ho et al. 2020, Eq. 4 and Eq. 15; Song et al. 2021, DDIM Eq. 12 "predicted x_0"). It is the
raw prediction: the schedulers clip (DDPM/DDIM) or threshold (DPM-Solver++) their own copy
before stepping, so x̂₀ may leave [-1, 1] at large w; displays clamp it.
"""

from __future__ import annotations

from typing import Callable

import torch

from core.diffusion.guidance import EpsFn, check_w, guided_eps
from core.diffusion.samplers import make_scheduler
from core.errors import Cancelled, ConfigError

# per-step tensors, each (len(ws), steps, C, H, W)
STEP_KEYS = ("x_t", "x0_hat", "eps_cond", "eps_uncond", "eps_guided")


def predicted_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
    """x̂₀ = (x_t − sqrt(1−ᾱ_t)·ε) / sqrt(ᾱ_t) (Ho et al. 2020, Eq. 15)."""
    a = torch.as_tensor(alpha_bar, dtype=x_t.dtype, device=x_t.device)
    return (x_t - (1 - a).sqrt() * eps) / a.sqrt()


def guidance_norm(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """‖w·(ε(x,c) − ε(x))‖₂ per image: the part of ε̃ that guidance adds to the conditional ε
    (ε̃ − ε(x,c) = w·(ε(x,c) − ε(x)) by Eq. 8). ``ws`` holds one w per image."""
    diff = (eps_cond - eps_uncond).flatten(1)
    return ws.to(diff.dtype).abs() * diff.norm(dim=1)


@torch.no_grad()
def trajectory(
    eps_fn: EpsFn,
    class_idx: int,
    seed: int,
    shape: tuple[int, int, int],
    null_label: int,
    ws: list[float],
    sampler: str = "dpm",
    steps: int = 25,
    beta_schedule: str = "linear",
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, torch.Tensor]:
    """The whole trajectory of class ``class_idx`` from seed ``seed``, one column per w.

    Returns CPU float32 tensors: the ``STEP_KEYS`` (len(ws), S, C, H, W) with S sampler steps,
    ``final`` (len(ws), C, H, W) (the sample after the last step, in [-1, 1]),
    ``guidance_norm`` (len(ws), S), ``timesteps`` (S,), ``alpha_bar`` (S,) and ``ws``.
    Each column goes through the network as its own batch of two (conditional, unconditional).
    """
    from diffusers.utils.torch_utils import randn_tensor

    if not ws:
        raise ConfigError("The trajectory needs at least one value of w.", "Enter e.g. w = 0, 2, 7.5.")
    ws_list = [check_w(w) for w in ws]
    if not 0 <= int(class_idx) < int(null_label):
        raise ConfigError(f"Class {class_idx} does not exist: the model has {null_label} classes (0-{null_label - 1}).",
                          "Pick one of the model's classes.")
    device = torch.device(device)
    sched = make_scheduler(sampler, steps, beta_schedule)
    n = len(ws_list)
    # one generator per column, all with the same seed: the same x_T and the same DDPM noise in every column
    gens = [torch.Generator("cpu").manual_seed(int(seed)) for _ in ws_list]
    x = randn_tensor((n, *shape), generator=gens, device=device, dtype=torch.float32) * sched.init_noise_sigma
    labels = torch.full((n,), int(class_idx), device=device, dtype=torch.long)
    null = torch.full_like(labels, int(null_label))
    w = torch.tensor(ws_list, dtype=torch.float32, device=device)
    alphas = sched.alphas_cumprod
    extra = {"use_clipped_model_output": True} if sampler == "ddim" else {}  # as core.diffusion.samplers.sample
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in (*STEP_KEYS, "guidance_norm")}
    total = len(sched.timesteps)
    for i, t in enumerate(sched.timesteps):
        if should_stop and should_stop():
            raise Cancelled("trajectory cancelled")
        x_in = sched.scale_model_input(x, t)
        tt = t.to(device).expand(2)
        # One network pass per column ([x_k; x_k] with [c; null]), not one batch of every column:
        # CPU convolutions round a row differently depending on the batch around it (~1e-5), and
        # equal w must give bit-identical columns.
        pairs = [eps_fn(x_in[k:k + 1].repeat(2, 1, 1, 1), tt, torch.stack([labels[k], null[k]])).float() for k in range(n)]
        eps_c, eps_u = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        eps_g = guided_eps(eps_c, eps_u, w)
        for key, val in (("x_t", x), ("x0_hat", predicted_x0(x, eps_g, float(alphas[int(t)]))), ("eps_cond", eps_c),
                         ("eps_uncond", eps_u), ("eps_guided", eps_g), ("guidance_norm", guidance_norm(eps_c, eps_u, w))):
            rec[key].append(val.detach().float().cpu())
        x = sched.step(eps_g, t, x, generator=gens, **extra).prev_sample
        if progress:
            progress(i + 1, total)
    out = {k: torch.stack(v, dim=1) for k, v in rec.items()}
    out["final"] = x.float().clamp(-1, 1).cpu()
    out["timesteps"] = sched.timesteps.detach().cpu().long()
    out["alpha_bar"] = torch.stack([alphas[int(t)] for t in sched.timesteps]).float()
    out["ws"] = w.cpu()
    return out
