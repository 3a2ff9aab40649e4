"""Sampling loops over diffusers schedulers, separate from the network and the trainer.

Like NVlabs/edm's ``edm_sampler``, :func:`sample` is a pure function of an ε-network,
labels and per-image seeds. The schedulers come from diffusers:

* ``ddpm``  DDPM ancestral sampling (Ho et al. 2020, Alg. 2), the paper's sampler at 1000 steps
* ``ddim``  DDIM, η = 0 (Song et al. 2021), deterministic
* ``dpm``   DPM-Solver++(2M) multistep (Lu et al. 2022), deterministic, 20-25 steps

Each image has its own ``torch.Generator`` (``seeds[i]``) for its starting noise and,
for DDPM, its ancestral noise (diffusers' ``randn_tensor`` draws per-generator rows),
so an image does not depend on which batch it was made in.
"""

from __future__ import annotations

from typing import Callable

import torch

from core.diffusion.guidance import EpsFn, cfg_eps, check_w
from core.errors import Cancelled, ConfigError

T_TRAIN = 1000  # diffusion steps T of training (the paper and DDPM)

SAMPLERS = {
    "ddpm": "DDPM ancestral sampling (the paper's sampler; use 1000 steps)",
    "ddim": "DDIM (η = 0), deterministic",
    "dpm": "DPM-Solver++ multistep, deterministic; 20-25 steps",
}
DEFAULT_STEPS = {"ddpm": 1000, "ddim": 50, "dpm": 25}

# our name -> diffusers' beta_schedule name
BETA_SCHEDULES = {
    "linear": "linear",  # β from 1e-4 to 0.02 (DDPM)
    "cosine": "squaredcos_cap_v2",  # Nichol & Dhariwal 2021, Eq. 17
}


def check_beta_schedule(name: str) -> str:
    if name not in BETA_SCHEDULES:
        raise ConfigError(f"Unknown beta schedule '{name}'.", f"Choose one of: {', '.join(BETA_SCHEDULES)}.")
    return BETA_SCHEDULES[name]


def training_scheduler(beta_schedule: str = "linear"):
    """The forward process q(x_t | x_0) used by training (T = 1000): a DDPMScheduler."""
    from diffusers import DDPMScheduler  # diffusers is imported lazily so the CLI's --help stays fast

    return DDPMScheduler(num_train_timesteps=T_TRAIN, beta_schedule=check_beta_schedule(beta_schedule), prediction_type="epsilon")


def check_sampler(sampler: str, steps: int) -> None:
    if sampler not in SAMPLERS:
        raise ConfigError(f"Unknown sampler '{sampler}'.", f"Choose one of: {', '.join(SAMPLERS)}.")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"Sampling steps must be a positive integer, got {steps!r}.", f"Use e.g. {DEFAULT_STEPS[sampler]} steps for '{sampler}'.")
    if steps > T_TRAIN:
        raise ConfigError(f"{steps} sampling steps exceed the {T_TRAIN} training steps.", f"Use at most {T_TRAIN} steps.")


def make_scheduler(sampler: str, steps: int, beta_schedule: str = "linear"):
    """A fresh diffusers scheduler for one sampling run (schedulers hold per-run state)."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    check_sampler(sampler, steps)
    betas = check_beta_schedule(beta_schedule)
    common = dict(num_train_timesteps=T_TRAIN, beta_schedule=betas, prediction_type="epsilon")
    if sampler == "ddpm":
        sched = DDPMScheduler(**common, clip_sample=True)
    elif sampler == "ddim":
        # x̂_0 is clipped to [-1, 1] and ε re-derived from it (use_clipped_model_output below):
        # with strong guidance the raw ε̃ would otherwise push pixels far out of range.
        sched = DDIMScheduler(**common, clip_sample=True)
    else:
        # Pixel-space guided sampling: dynamic thresholding of x̂_0 (Saharia et al. 2022),
        # as DPM-Solver++ recommends; DDPM/DDIM clip x̂_0 to [-1, 1] instead.
        sched = DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2, thresholding=True, sample_max_value=1.0)
    sched.set_timesteps(steps)
    return sched


def model_eps_fn(model: torch.nn.Module, device: torch.device | str) -> EpsFn:
    """ε(x, t, c) from a diffusers UNet2DModel: bf16 autocast and channels_last on CUDA only."""
    device = torch.device(device)
    cuda = device.type == "cuda"

    def eps(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            return model(x, t, class_labels=labels).sample.float()

    return eps


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 0..255."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@torch.no_grad()
def sample(
    eps_fn: EpsFn,
    labels: torch.Tensor,
    seeds: list[int],
    shape: tuple[int, int, int],
    null_label: int,
    w: float | torch.Tensor = 0.0,
    sampler: str = "dpm",
    steps: int = 25,
    beta_schedule: str = "linear",
    device: torch.device | str = "cpu",
    batched: bool = True,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Images in [-1, 1] (B, C, H, W) on the CPU, guided by Eq. 8 with strength ``w``.

    ``w`` is one number or one value per image; ``labels`` (B,) are class indices;
    ``seeds`` (B,) one per image. Raises ``Cancelled`` when ``should_stop()`` turns true.
    """
    from diffusers.utils.torch_utils import randn_tensor


    device = torch.device(device)
    if isinstance(w, torch.Tensor):
        w = w.to(device=device, dtype=torch.float32)
        if bool((w < 0).any()):
            check_w(float(w.min()))
    else:
        w = check_w(w)
    if len(seeds) != len(labels):
        raise ValueError("one seed per image is required")
    sched = make_scheduler(sampler, steps, beta_schedule)
    labels = labels.to(device)
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    x = randn_tensor((len(labels), *shape), generator=gens, device=device, dtype=torch.float32) * sched.init_noise_sigma
    total = len(sched.timesteps)
    for i, t in enumerate(sched.timesteps):
        if should_stop and should_stop():
            raise Cancelled("sampling cancelled")
        tt = t.to(device).expand(len(labels))
        eps = cfg_eps(eps_fn, sched.scale_model_input(x, t), tt, labels, w, null_label, batched=batched)
        extra = {"use_clipped_model_output": True} if sampler == "ddim" else {}
        x = sched.step(eps, t, x, generator=gens, **extra).prev_sample
        if progress:
            progress(i + 1, total)
    return x.float().cpu()
