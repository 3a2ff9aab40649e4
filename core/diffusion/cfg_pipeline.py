"""A class-conditional, classifier-free-guided image pipeline for diffusers (Imbalance Lab export).

This file is copied as ``pipeline.py`` into every folder ``python -m core export`` writes, so the
exported generator loads and samples without the lab installed (torch + diffusers only)::

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained("export/cfg-digits", custom_pipeline="pipeline", trust_remote_code=True)
    images = pipe(class_labels=[3, 3], w=7.5, seeds=[0, 1]).images       # PIL images

Guidance is the paper's (Ho & Salimans 2022, Eq. 8): ε̃ = (1 + w)·ε(x, c) − w·ε(x, ∅), so w = 0 is
plain conditional sampling and diffusers' ``guidance_scale`` is 1 + w (either may be passed, not
both). The unconditional branch is the UNet's last class embedding (``num_class_embeds - 1``).
Each image draws its starting noise from its own CPU generator (``seeds`` or a list of
``generator``s), as the lab does, so seed s gives the lab's image for seed s.

It imports nothing from the lab (``core``): keep it that way, it must run where the lab is not installed.
"""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor


class ImbalanceLabCFGPipeline(DiffusionPipeline):
    """unet: a class-conditional UNet2DModel with C + 1 class embeddings (the last is the null
    label); scheduler: any diffusers scheduler (the export's is DPM-Solver++(2M), thresholded)."""

    def __init__(self, unet, scheduler):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    @property
    def null_label(self) -> int:
        return int(self.unet.config.num_class_embeds) - 1

    @torch.no_grad()
    def __call__(self, class_labels, w: float | None = None, guidance_scale: float | None = None, num_inference_steps: int = 25,
                 seeds=None, generator=None, output_type: str = "pil", return_dict: bool = True):
        """Sample one image per entry of ``class_labels`` (ints in 0..C-1).

        output_type: "pil" (list of PIL images), "np" (B, H, W, C floats in [0, 1]), "pt" (B, C, H, W
        in [0, 1]) or "raw" (B, C, H, W, the sampler's own [-1, 1] output, unclamped)."""
        labels = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
        n = len(labels)
        if n == 0:
            raise ValueError("class_labels is empty: pass one class index per image, e.g. [3, 3, 3].")
        if bool(((labels < 0) | (labels >= self.null_label)).any()):
            raise ValueError(f"class_labels must be in 0..{self.null_label - 1} (label {self.null_label} is the unconditional one).")
        if w is not None and guidance_scale is not None:
            raise ValueError("Pass w (the paper's) or guidance_scale (= 1 + w), not both.")
        w = float(guidance_scale) - 1.0 if guidance_scale is not None else 0.0 if w is None else float(w)
        if not w >= 0.0 or w == float("inf"):
            raise ValueError(f"w={w} must be a finite number >= 0 (guidance_scale >= 1); w = 0 is plain conditional sampling.")
        if seeds is not None and generator is not None:
            raise ValueError("Pass seeds or generator, not both.")
        if seeds is not None:
            if len(seeds) != n:
                raise ValueError(f"{len(seeds)} seeds for {n} class labels: pass one seed per image.")
            generator = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        device = self.unet.device
        cfg = self.unet.config
        shape = (n, cfg.in_channels, cfg.sample_size, cfg.sample_size)
        x = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype) * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps)
        labels = labels.to(device)
        null = torch.full_like(labels, self.null_label)
        for t in self.progress_bar(self.scheduler.timesteps):
            xin = self.scheduler.scale_model_input(x, t)
            tt = t.to(device).expand(n)
            if w == 0:  # Eq. 8 is ε(x, c) exactly: the unconditional pass is skipped, as in the lab
                eps = self.unet(xin, tt, class_labels=labels).sample
            else:
                eps_c, eps_u = self.unet(torch.cat([xin, xin]), torch.cat([tt, tt]), class_labels=torch.cat([labels, null])).sample.chunk(2)
                eps = (1 + w) * eps_c - w * eps_u
            extra = {"use_clipped_model_output": True} if "use_clipped_model_output" in _step_params(self.scheduler) else {}
            x = self.scheduler.step(eps, t, x, generator=generator, **extra).prev_sample
        x = x.float().cpu()
        if output_type == "raw":
            images = x
        else:
            images = ((x.clamp(-1, 1) + 1) / 2)
            if output_type in ("np", "pil"):
                images = images.permute(0, 2, 3, 1).numpy()
                if output_type == "pil":
                    images = self.numpy_to_pil(images)
            elif output_type != "pt":
                raise ValueError(f"Unknown output_type {output_type!r}: use 'pil', 'np', 'pt' or 'raw'.")
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)


def _step_params(scheduler) -> set[str]:
    import inspect

    return set(inspect.signature(scheduler.step).parameters)
