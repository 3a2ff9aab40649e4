"""The Stable Diffusion generator: sampling a class's images, screening them, in seed order.

Guidance: the lab's w everywhere, ε̃ = (1+w)·ε(x,c) − w·ε(x); diffusers' pipelines take
``guidance_scale = 1 + w`` and skip classifier-free guidance when it is <= 1 (w <= 0),
which is how fast distilled models (SD-Turbo: 1-4 steps) are run.

Reproducibility: image j of class c uses ``image_seed(seed, c, j)`` through its own
``torch.Generator`` (its initial noise never depends on the batch), so batch size,
sharding and filtering order do not change which image is made; batched kernels sum in a
different order, so a pixel may move by a level or two of 255 between batch sizes. The
same call with the same settings on the same machine gives the same bytes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from core.data.imageset import ImageSet
from core.errors import ConfigError, TrainingError
from core.generators.base import Cancelled, Generator, Progress, ShouldStop, image_seed, resolve_class
from core.generators.filtering import FilterShortfall, FilterStats, accepts
from core.generators.sd.downscale import to_dataset_images
from core.generators.sd.pipeline import SCHEDULERS, LoadedPipeline, load_pipeline, make_scheduler
from core.generators.sd.prompts import DEFAULT_PROMPT, check_template, class_prompt
from core.generators.sd.sharding import distribution
from core.generators.sd.weights import ALIASES, DEFAULT_MODEL, folder_name, resolve

_OOM = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError


class SDGenerator(Generator):
    """Stable Diffusion (or any diffusers text-to-image model) prompted with class names."""

    def __init__(
        self,
        classes: list[str],
        channels: int,
        image_size: int,
        model: str = DEFAULT_MODEL,  # hub id, or a diffusers pipeline folder
        prompt: str = DEFAULT_PROMPT,  # {class} -> class name ("_" -> " ")
        class_prompts: dict[str | int, str] | None = None,  # per-class override (name or index -> prompt)
        negative_prompt: str = "",  # used only while guidance is on (w > 0)
        w: float = 6.5,  # lab guidance; guidance_scale = 1 + w; w <= 0 turns guidance off
        steps: int = 25,  # sampling steps (SD-Turbo: 1-4)
        scheduler: str = "dpm++",  # see SCHEDULERS; "model" keeps the model's own
        batch_size: int = 8,  # images per pipeline call (per process); does not change the images (up to rounding)
        resolution: int | None = None,  # generation size in pixels; None = the model's native size
        dtype: str = "auto",  # auto | fp32 | fp16 | bf16 (auto: fp16 on GPU, fp32 on CPU)
        device: str | None = None,  # None: cuda > mps > cpu (the process's GPU under accelerate)
        attention_slicing: bool = False,  # lower peak memory, slower
        vae_tiling: bool = False,  # decode in tiles/slices: lower peak memory at large sizes/batches
        cpu_offload: bool = False,  # keep only the running sub-model on the GPU (needs accelerate)
        safety_checker: bool = False,  # run the model's NSFW checker; flagged (blacked-out) images are dropped
        filter_classifier: Any = None,  # object with predict(uint8 images) -> labels; keeps images of the prompted class
        max_attempts: float = 4.0,  # at most ceil(max_attempts * n) candidates per request (filtering/safety)
    ):
        super().__init__(classes, channels, image_size)
        self.model = ALIASES.get(model, model)
        self.prompt = prompt
        self.class_prompts = {resolve_class(k, self.classes): v for k, v in (class_prompts or {}).items()}
        self.negative_prompt = negative_prompt or ""
        self.w = float(w)
        self.steps = int(steps)
        self.scheduler = scheduler
        self.batch_size = int(batch_size)
        self.resolution = resolution
        self.dtype = dtype
        self.device = device
        self.attention_slicing = bool(attention_slicing)
        self.vae_tiling = bool(vae_tiling)
        self.cpu_offload = bool(cpu_offload)
        self.safety_checker = bool(safety_checker)
        self.filter_classifier = filter_classifier
        self.max_attempts = float(max_attempts)
        self.filter_stats: dict[int, FilterStats] = {}
        self.last_rate: float | None = None  # images/s of the last generate()
        self.rendered = 0  # images this process rendered (its shard under accelerate)
        self._validate()
        self.source = resolve(self.model)  # fail early (offline, no weights) without loading anything
        self._loaded: LoadedPipeline | None = None
        self._scheduler = None
        self.name = f"sd:{folder_name(self.model) if self.source.kind != 'folder' else Path(self.source.location).name}@w={self.w:g}"

    # -- settings ---------------------------------------------------------------------
    @property
    def guidance_scale(self) -> float:
        return 1.0 + self.w  # diffusers' convention

    @property
    def cfg_active(self) -> bool:
        return self.guidance_scale > 1.0  # diffusers skips the unconditional pass otherwise

    def _validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"Datasets with {self.channels} channels are not supported by the SD generator.", "Use a grayscale (1) or RGB (3) dataset.")
        check_template(self.prompt, self.class_prompts, len(self.classes))
        if not math.isfinite(self.w) or self.w < -1:
            raise ConfigError(f"Guidance w={self.w} is out of range.", "Use w >= 0 (guidance_scale = 1 + w); w = 0 turns guidance off (fast models like SD-Turbo).")
        if self.steps < 1 or self.steps > 1000:
            raise ConfigError(f"steps={self.steps} must be between 1 and 1000.", "Use 20-50 for SD 1.5, 1-4 for SD-Turbo.")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1.", "Use 1-16 (lower it when the GPU runs out of memory).")
        if self.resolution is not None and (self.resolution < 64 or self.resolution % 8):
            raise ConfigError(f"resolution={self.resolution} must be a multiple of 8 and at least 64.", "Leave it empty for the model's native size (512 for SD 1.5).")
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts={self.max_attempts} must be >= 1.", "Use e.g. 4: up to 4 candidates per requested image.")
        if self.filter_classifier is not None and not callable(getattr(self.filter_classifier, "predict", None)):
            raise ConfigError("The filter classifier has no predict(images) method.", "Pass e.g. core.metrics.judge.get_judge(data_cfg).")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"Unknown scheduler '{self.scheduler}'.", f"Use one of: {', '.join(SCHEDULERS)}.")

    def prompt_for(self, class_idx: int) -> str:
        return class_prompt(self.prompt, self.class_prompts, self.classes, class_idx)

    # -- pipeline ---------------------------------------------------------------------
    def pipeline(self) -> LoadedPipeline:
        """The cached pipeline (loaded on first use) with this generator's scheduler."""
        if self._loaded is None:
            _, _, _, dist_device = distribution()
            loaded = load_pipeline(self.model, self.dtype, self.device or dist_device, self.safety_checker, self.cpu_offload)
            self._scheduler = make_scheduler(self.scheduler, loaded.base_scheduler)  # not pipe.scheduler: another generator's
            self._loaded = loaded
        return self._loaded

    def _prepare(self, loaded: LoadedPipeline) -> None:
        """Apply this generator's per-call settings to the shared pipeline (caller holds the lock)."""
        pipe = loaded.pipe
        pipe.scheduler = self._scheduler
        if loaded.slicing != self.attention_slicing:
            pipe.enable_attention_slicing() if self.attention_slicing else pipe.disable_attention_slicing()
            loaded.slicing = self.attention_slicing
        if loaded.tiling != self.vae_tiling and hasattr(pipe, "vae"):
            if self.vae_tiling:
                pipe.vae.enable_tiling()
                pipe.vae.enable_slicing()
            else:
                pipe.vae.disable_tiling()
                pipe.vae.disable_slicing()
            loaded.tiling = self.vae_tiling

    def _render(self, loaded: LoadedPipeline, class_idx: int, seeds: list[int], stop_each_step: ShouldStop) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images at the dataset size and an NSFW mask, one image per seed."""
        try:
            return self._call(loaded, class_idx, seeds, stop_each_step)
        except _OOM as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(seeds) == 1:
                raise TrainingError(
                    f"Out of GPU memory making one {self.resolution or loaded.native_resolution} px image with {self.model} ({loaded.dtype}).",
                    "Turn on attention slicing, VAE tiling or CPU offload, use fp16, or a smaller --resolution.",
                ) from exc
            # per-image seeds make the split invisible in the output; remember the smaller batch
            half = len(seeds) // 2
            self.batch_size = max(1, min(self.batch_size, half))
            a = self._render(loaded, class_idx, seeds[:half], stop_each_step)
            b = self._render(loaded, class_idx, seeds[half:], stop_each_step)
            return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])

    def _call(self, loaded: LoadedPipeline, class_idx: int, seeds: list[int], stop_each_step: ShouldStop) -> tuple[torch.Tensor, torch.Tensor]:
        res = self.resolution or loaded.native_resolution
        kwargs: dict[str, Any] = dict(
            prompt=self.prompt_for(class_idx),
            num_images_per_prompt=len(seeds),
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            # CPU generators: the same seed gives the same latents on every device
            generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
            height=res,
            width=res,
            output_type="pt",
        )
        if self.negative_prompt and self.cfg_active:
            kwargs["negative_prompt"] = self.negative_prompt
        if stop_each_step is not None:

            def on_step_end(pipe, i, t, callback_kwargs):
                if stop_each_step():
                    raise Cancelled("stopped during a pipeline call")
                return callback_kwargs

            kwargs["callback_on_step_end"] = on_step_end
        with loaded.lock:
            self._prepare(loaded)
            out = loaded.pipe(**kwargs)
        images = out.images if torch.is_tensor(out.images) else torch.stack([torch.as_tensor(i) for i in out.images])
        nsfw = getattr(out, "nsfw_content_detected", None)
        nsfw = torch.tensor([bool(f) for f in nsfw]) if nsfw is not None else torch.zeros(len(seeds), dtype=torch.bool)
        return to_dataset_images(images, self.image_size, self.channels), nsfw

    # -- Generator interface -----------------------------------------------------------
    def generate(self, class_idx: int, n: int, seed: int = 0, progress: Progress = None, should_stop: ShouldStop = None) -> ImageSet:
        """``n`` images of ``class_idx``; candidate j uses image_seed(seed, class_idx, j).

        With a filter classifier (or the safety checker) candidates are examined in seed
        order and the first ``n`` accepted are returned, so the result does not depend on
        batch size or the number of processes. Under ``accelerate launch`` each process
        renders every world-th candidate of a round and the rounds are gathered.
        """
        self.check_request(class_idx, n)
        if should_stop and should_stop():
            raise Cancelled()
        loaded = self.pipeline()
        stats = FilterStats()  # this call's; added to self.filter_stats[class] however the call ends
        try:
            return self._generate(loaded, int(class_idx), n, seed, progress, should_stop, stats)
        finally:
            total = self.filter_stats.setdefault(int(class_idx), FilterStats())
            for f in ("candidates", "accepted", "rejected_class", "rejected_nsfw"):
                setattr(total, f, getattr(total, f) + getattr(stats, f))

    def _generate(self, loaded: LoadedPipeline, class_idx: int, n: int, seed: int, progress: Progress, should_stop: ShouldStop, stats: FilterStats) -> ImageSet:
        rank, world, gather, _ = distribution()
        limit = math.ceil(self.max_attempts * n)
        screening = self.filter_classifier is not None or self.safety_checker
        kept: list[torch.Tensor] = []
        next_j, seen, ok_seen, t0 = 0, 0, 0, time.perf_counter()
        while len(kept) < n:
            if next_j >= limit:
                raise self._shortfall(class_idx, n, kept, stats)
            need = n - len(kept)
            if screening:  # ask for enough candidates at the acceptance rate seen so far
                need = math.ceil(need / max(ok_seen / seen if seen else 1.0, 0.25))
            size = min(need, self.batch_size * world, limit - next_j)
            js = list(range(next_j, next_j + size))
            mine = js[rank::world]
            if world == 1 and should_stop and should_stop():
                raise Cancelled()
            if mine:
                seeds = [image_seed(seed, int(class_idx), j) for j in mine]
                images, nsfw = self._render(loaded, int(class_idx), seeds, should_stop if world == 1 else None)
                self.rendered += len(seeds)
                ok = ~nsfw
                if self.filter_classifier is not None:
                    ok &= accepts(self.filter_classifier, images, int(class_idx))
            else:
                images = torch.zeros(0, self.channels, self.image_size, self.image_size, dtype=torch.uint8)
                nsfw = ok = torch.zeros(0, dtype=torch.bool)
            stop = bool(world > 1 and should_stop and should_stop())  # every process learns of a stop at the gather
            parts = gather((mine, images, ok, nsfw, stop))
            if any(p[4] for p in parts):
                raise Cancelled()
            rows = sorted(((j, img, bool(k), bool(f)) for p in parts for j, img, k, f in zip(p[0], p[1], p[2], p[3])), key=lambda r: r[0])
            for _, img, k, f in rows:
                stats.candidates += 1
                seen += 1
                if f:
                    stats.rejected_nsfw += 1
                elif not k:
                    stats.rejected_class += 1
                else:
                    stats.accepted += 1
                    ok_seen += 1
                    kept.append(img)
            next_j += size
            if progress:
                progress(min(len(kept), n), n)
        self.last_rate = seen / max(time.perf_counter() - t0, 1e-9)
        return self.wrap(torch.stack(kept[:n]), int(class_idx))

    def _shortfall(self, class_idx: int, n: int, kept: list[torch.Tensor], stats: FilterStats) -> FilterShortfall:
        name = self.classes[class_idx]
        got = self.wrap(torch.stack(kept), class_idx) if kept else self.wrap(torch.zeros(0, self.channels, self.image_size, self.image_size, dtype=torch.uint8), class_idx)
        return FilterShortfall(
            f"Only {len(kept)} of {n} images of class '{name}' were accepted after {stats.candidates} candidates "
            f"(rejection rate {stats.rejection_rate:.0%}: {stats.rejected_class} assigned to another class, {stats.rejected_nsfw} flagged NSFW).",
            f"Give '{name}' a more specific prompt (class_prompts / --class-prompt '{name}=...'), raise max_attempts "
            f"(now {self.max_attempts:g} candidates per image), or turn the filter off.",
            got,
            stats,
        )

    def describe(self) -> dict:
        loaded = self._loaded
        return {
            "name": self.name,
            "method": "sd",
            "model": self.model,
            "weights": self.source.location,
            "weights_from": self.source.kind,
            "prompt": self.prompt,
            "prompts": {self.classes[c]: self.prompt_for(c) for c in range(len(self.classes))},
            "negative_prompt": self.negative_prompt,
            "w": self.w,
            "guidance_scale": self.guidance_scale,
            "cfg_active": self.cfg_active,
            "steps": self.steps,
            "scheduler": self.scheduler,
            "resolution": self.resolution or (loaded.native_resolution if loaded else None),
            "image_size": self.image_size,
            "channels": self.channels,
            "resize": "bicubic, antialiased",
            "dtype": loaded.dtype if loaded else self.dtype,
            "device": loaded.device if loaded else self.device,
            "batch_size": self.batch_size,
            "attention_slicing": self.attention_slicing,
            "vae_tiling": self.vae_tiling,
            "cpu_offload": self.cpu_offload,
            "safety_checker": self.safety_checker,
            "filter": type(self.filter_classifier).__name__ if self.filter_classifier is not None else None,
            "max_attempts": self.max_attempts,
            "filter_stats": {self.classes[c]: s.to_dict() for c, s in sorted(self.filter_stats.items())},
        }
