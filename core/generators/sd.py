"""Pretrained Stable Diffusion prompted with the class name, downscaled to the dataset.

The paper's strongest method (FID 6.56): Stable Diffusion makes 512 px images from
"a photo of a {class}", which are resized (antialiased) to the dataset's resolution.
Weights come from a folder under ``models/`` (``models/<name>`` for hub id
``<owner>/<name>``), a folder given by path, the Hugging Face cache, or (online only) the
hub. Offline without weights, :class:`WeightsMissingError` says what to fetch and where.

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

import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.data.imageset import ImageSet
from core.errors import ConfigError, TrainingError, WeightsMissingError
from core.generators.base import Cancelled, Generator, Progress, ShouldStop, image_seed, resolve_class
from core.generators.filtering import FilterShortfall, FilterStats, accepts
from core.paths import PROJECT_ROOT, models_dir

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass(frozen=True)
class ModelInfo:
    """What the lab knows about a hub model (sizes: diffusers files only, no safety checker)."""

    size_fp16: str  # download with the fp16 variant files
    size_fp32: str  # download with the full-precision files
    steps: int  # recommended sampling steps
    w: float  # recommended guidance (lab convention; guidance_scale = 1 + w)
    resolution: int  # native output size, pixels
    note: str


# Sizes are from the hub's file listings (unet + text encoder(s) + vae), rounded; the whole
# repositories are larger because they also hold single-file checkpoints and .bin copies.
KNOWN_MODELS: dict[str, ModelInfo] = {
    DEFAULT_MODEL: ModelInfo("2.1 GB", "4.3 GB", 25, 6.5, 512, "Stable Diffusion 1.5, the paper's model (guidance_scale 7.5 = w 6.5)"),
    "stabilityai/sd-turbo": ModelInfo("2.6 GB", "5.2 GB", 1, 0.0, 512, "SD-Turbo (distilled SD 2.1): 1-4 steps, no guidance"),
    "stabilityai/sdxl-turbo": ModelInfo("6.9 GB", "13.9 GB", 1, 0.0, 512, "SDXL-Turbo: 1-4 steps, no guidance"),
    "stabilityai/stable-diffusion-xl-base-1.0": ModelInfo("6.9 GB", "13.9 GB", 30, 4.0, 1024, "SDXL base, 1024 px"),
}
# The original SD 1.5 repository was taken down in 2024; its content lives on under DEFAULT_MODEL.
ALIASES = {"runwayml/stable-diffusion-v1-5": DEFAULT_MODEL}

SCHEDULERS = {
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),  # Lu et al. 2022
    "dpm++karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "model": (None, {}),  # keep the scheduler the model ships with (SD-Turbo: Euler, trailing spacing)
}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_OOM = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ------------------------------------------------------------------ where weights are
def offline() -> bool:
    """True when nothing may be downloaded (the lab's flag or the hub's)."""
    flags = (os.environ.get(v, "") for v in ("IMBALANCE_LAB_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f.strip().lower() not in ("", "0", "false", "no", "off") for f in flags)


def folder_name(model: str) -> str:
    """``owner/name`` -> ``name``: the folder under models/ that holds a hub model."""
    return ALIASES.get(model, model).rstrip("/").split("/")[-1]


def models_folder(model: str) -> Path:
    return models_dir() / folder_name(model)


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - very old huggingface_hub
        return "~/.cache/huggingface/hub"


def download_command(model: str, dest: Path | str | None = None) -> str:
    """The command that fetches only the files the lab needs (fp16 variant where there is one)."""
    model = ALIASES.get(model, model)
    dest = dest or _display(models_folder(model))
    weights = "'*.fp16.safetensors'" if model in KNOWN_MODELS else "'*.safetensors'"
    return f"hf download {model} --include '*.json' '*.txt' {weights} --exclude 'safety_checker/*' --local-dir {dest}"


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Source:
    """Where a model's weights will be loaded from."""

    model: str  # as the user named it (aliases resolved)
    location: str  # folder path or hub id handed to from_pretrained
    kind: str  # "folder" | "hf-cache" | "hub"


def missing_error(model: str, detail: str = "") -> WeightsMissingError:
    info = KNOWN_MODELS.get(model)
    size = f"~{info.size_fp16} with the fp16 files, ~{info.size_fp32} in full precision" if info else "size: see the model page"
    folder = _display(models_folder(model))
    return WeightsMissingError(
        f"Stable Diffusion weights for '{model}' ({size}) are not available offline: "
        f"there is no {folder}/model_index.json and the model is not in the Hugging Face cache ({_hf_cache_dir()}).{detail}",
        f"On a machine with internet run `{download_command(model)}` (older huggingface_hub: `huggingface-cli download` "
        f"with the same arguments) and copy the folder to {folder}; or pass --model with the path of any diffusers "
        f"pipeline folder (one holding model_index.json); or go online (unset IMBALANCE_LAB_OFFLINE / HF_HUB_OFFLINE) "
        f"to download it into the Hugging Face cache. See docs/stable-diffusion.md.",
    )


def _in_hf_cache(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "model_index.json"), str)
    except Exception:
        return False


def resolve(model: str) -> Source:
    """Find a model's weights without loading them; raises WeightsMissingError offline."""
    model = ALIASES.get(str(model).strip(), str(model).strip())
    if not model:
        raise ConfigError("No Stable Diffusion model given.", f"Pass a hub id such as {DEFAULT_MODEL} or a pipeline folder.")
    for path in (Path(model).expanduser(), PROJECT_ROOT / model):
        if path.exists():
            if not (path / "model_index.json").is_file():
                raise WeightsMissingError(
                    f"{path} is not a diffusers pipeline folder (it has no model_index.json).",
                    "Point --model at the folder `hf download ... --local-dir` created (it holds model_index.json, "
                    "unet/, vae/, text_encoder/, tokenizer/, scheduler/). Single .ckpt/.safetensors checkpoints are not supported.",
                )
            return Source(model, str(path.resolve()), "folder")
    if not _HUB_ID.match(model) or model.split("/")[0] in ("models", ".", ".."):
        raise WeightsMissingError(
            f"Model folder '{model}' does not exist.",
            f"Check the path, or give a hub id such as {DEFAULT_MODEL} (looked up in {_display(models_dir())}/<name> first).",
        )
    local = models_folder(model)
    if (local / "model_index.json").is_file():
        return Source(model, str(local), "folder")
    if _in_hf_cache(model):
        return Source(model, model, "hf-cache")
    if offline():
        raise missing_error(model)
    return Source(model, model, "hub")


def sd_available(model: str = DEFAULT_MODEL) -> tuple[bool, str]:
    """(True, where it comes from) or (False, the message saying what to fetch and where)."""
    try:
        src = resolve(model)
    except (WeightsMissingError, ConfigError) as exc:
        return False, str(exc)
    info = KNOWN_MODELS.get(src.model)
    where = {
        "folder": f"local folder {src.location}",
        "hf-cache": f"Hugging Face cache ({_hf_cache_dir()})",
        "hub": f"will be downloaded from the hub into {_hf_cache_dir()}" + (f" (~{info.size_fp16} in fp16)" if info else ""),
    }[src.kind]
    return True, where


# ------------------------------------------------------------------ loading (cached per process)
def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def pick_dtype(dtype: str, device: str) -> str:
    """'auto' -> fp16 on a GPU, fp32 on the CPU."""
    gpu = not str(device).startswith("cpu")
    if dtype == "auto":
        return "fp16" if gpu else "fp32"
    if dtype not in DTYPES:
        raise ConfigError(f"Unknown dtype '{dtype}'.", f"Use one of: auto, {', '.join(DTYPES)}.")
    if dtype == "fp16" and not gpu:
        raise ConfigError("fp16 needs a GPU; on the CPU half precision is slow or unsupported.", "Use --dtype fp32 (or bf16) on the CPU.")
    return dtype


def _variant(src: Source, dtype: str) -> str | None:
    """Load the fp16 weight files when they are there and wanted (or the only ones there)."""
    if src.kind != "folder":
        return "fp16" if dtype != "fp32" and src.model in KNOWN_MODELS else None
    files = [p.name for p in Path(src.location).glob("*/*") if p.suffix in (".safetensors", ".bin")]
    has_fp16 = any(".fp16." in f for f in files)
    has_full = any(".fp16." not in f for f in files)
    return "fp16" if has_fp16 and (dtype != "fp32" or not has_full) else None


@dataclass
class LoadedPipeline:
    pipe: Any
    source: Source
    dtype: str
    device: str
    base_scheduler: Any = None  # the scheduler the model ships with; every generator builds its own from it
    lock: threading.Lock = field(default_factory=threading.Lock)  # one generation at a time per pipeline
    slicing: bool = False
    tiling: bool = False

    @property
    def native_resolution(self) -> int:
        unet = getattr(self.pipe, "unet", None)
        size = getattr(getattr(unet, "config", None), "sample_size", None)
        if isinstance(size, (list, tuple)):
            size = size[0]
        return int(size * self.pipe.vae_scale_factor) if size else int(getattr(self.pipe, "default_sample_size", 64) * 8)


_PIPELINES: dict[tuple, LoadedPipeline] = {}
_CACHE_LOCK = threading.Lock()
LOAD_COUNT = {"n": 0}  # how many times weights were actually read (tests check the cache with it)


def clear_pipeline_cache() -> None:
    """Drop every cached pipeline (frees its memory once nothing else holds it)."""
    with _CACHE_LOCK:
        _PIPELINES.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _dtype_kwarg() -> str:
    # diffusers >= 0.36 renamed torch_dtype to dtype (the old name still works, with a warning)
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    except Exception:
        return "torch_dtype"


def _wants_safety_kwargs(src: Source) -> bool:
    """Does the pipeline have a safety_checker slot (SD 1.x/2.x) to switch off?"""
    if src.kind == "hub":
        return True  # unknown before download; pipelines without the slot ignore the keyword
    index = Path(src.location) / "model_index.json"
    if src.kind == "hf-cache":
        from huggingface_hub import try_to_load_from_cache

        index = Path(str(try_to_load_from_cache(src.model, "model_index.json")))
    try:
        return "safety_checker" in json.loads(index.read_text())
    except (OSError, ValueError):
        return False


def load_pipeline(model: str = DEFAULT_MODEL, dtype: str = "auto", device: str | None = None, safety_checker: bool = False, cpu_offload: bool = False) -> LoadedPipeline:
    """The text-to-image pipeline for ``model``, loaded once per process and settings."""
    device = str(device or default_device())
    dtype = pick_dtype(dtype, device)
    src = resolve(model)
    key = (src.location, dtype, device, bool(safety_checker), bool(cpu_offload))
    with _CACHE_LOCK:
        if key in _PIPELINES:
            return _PIPELINES[key]
        from diffusers import AutoPipelineForText2Image

        kwargs: dict[str, Any] = {_dtype_kwarg(): DTYPES[dtype]}
        if src.kind != "folder":
            kwargs["local_files_only"] = src.kind == "hf-cache" or offline()
        if not safety_checker and _wants_safety_kwargs(src):
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        variant = _variant(src, dtype)
        try:
            try:
                pipe = AutoPipelineForText2Image.from_pretrained(src.location, variant=variant, **kwargs)
            except (OSError, ValueError):
                if variant is None:
                    raise
                pipe = AutoPipelineForText2Image.from_pretrained(src.location, **kwargs)  # no fp16 files after all
        except Exception as exc:
            if src.kind == "folder":
                raise WeightsMissingError(
                    f"{src.location} could not be loaded as a diffusers text-to-image pipeline ({type(exc).__name__}: {str(exc)[:300]}).",
                    f"Re-download it completely with `{download_command(src.model, src.location)}` (use the matching hub id).",
                ) from exc
            raise missing_error(src.model, f" Loading failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
        LOAD_COUNT["n"] += 1
        pipe.set_progress_bar_config(disable=True)
        if cpu_offload and device.startswith("cuda"):
            pipe.enable_model_cpu_offload(device=device)  # keeps only the running sub-model on the GPU
        else:
            pipe.to(device)
        loaded = LoadedPipeline(pipe, src, dtype, device, base_scheduler=pipe.scheduler)
        _PIPELINES[key] = loaded
        return loaded


def make_scheduler(name: str, base: Any) -> Any:
    """A fresh scheduler of the named kind, built from the model's own scheduler's config."""
    if name not in SCHEDULERS:
        raise ConfigError(f"Unknown scheduler '{name}'.", f"Use one of: {', '.join(SCHEDULERS)}.")
    cls_name, extra = SCHEDULERS[name]
    import diffusers

    cls = getattr(diffusers, cls_name) if cls_name else type(base)
    return cls.from_config(base.config, **extra)


# ------------------------------------------------------------------ images out
def to_dataset_images(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Float [0,1] (N,3,H,W) -> uint8 (N,channels,size,size) on the CPU, antialiased resize."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    x = images.float().clamp(0, 1)
    if channels == 1:
        x = TF.rgb_to_grayscale(x)  # ITU-R 601-2 luma: 0.299 R + 0.587 G + 0.114 B
    elif channels != 3:
        raise ConfigError(f"Datasets with {channels} channels are not supported by the SD generator.", "Use a grayscale (1) or RGB (3) dataset.")
    if x.shape[-2:] != (size, size):
        # bicubic with antialiasing = PIL's BICUBIC reduce (the paper downsizes 512 -> 32)
        x = TF.resize(x, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def _distribution():
    """(rank, world size, gather, device) under ``accelerate launch`` / torchrun; one process otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, (lambda obj: [obj]), None
    from accelerate import PartialState
    from accelerate.utils import gather_object

    # without a GPU (or with `accelerate launch --cpu`) the processes talk over gloo on the CPU
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    state = PartialState(cpu=cpu)
    return state.process_index, state.num_processes, (lambda obj: gather_object([obj])), str(state.device)


# ------------------------------------------------------------------ the generator
class SDGenerator(Generator):
    """Stable Diffusion (or any diffusers text-to-image model) prompted with class names."""

    def __init__(
        self,
        classes: list[str],
        channels: int,
        image_size: int,
        model: str = DEFAULT_MODEL,  # hub id, or a diffusers pipeline folder
        prompt: str = "a photo of a {class}",  # {class} -> class name ("_" -> " ")
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
        if "{class}" not in self.prompt and len(self.class_prompts) < len(self.classes):
            raise ConfigError(
                f"The prompt template '{self.prompt}' has no {{class}} placeholder, so every class would get the same prompt.",
                "Put {class} where the class name goes (e.g. 'a photo of a {class}'), or give a prompt for every class.",
            )
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
            raise ConfigError("The filter classifier has no predict(images) method.", "Pass e.g. core.judge.get_judge(data_cfg).")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"Unknown scheduler '{self.scheduler}'.", f"Use one of: {', '.join(SCHEDULERS)}.")

    def prompt_for(self, class_idx: int) -> str:
        if class_idx in self.class_prompts:
            return self.class_prompts[class_idx]
        return self.prompt.replace("{class}", self.classes[class_idx].replace("_", " "))

    # -- pipeline ---------------------------------------------------------------------
    def pipeline(self) -> LoadedPipeline:
        """The cached pipeline (loaded on first use) with this generator's scheduler."""
        if self._loaded is None:
            _, _, _, dist_device = _distribution()
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
        rank, world, gather, _ = _distribution()
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


# ------------------------------------------------------------------ a miniature pipeline
def build_tiny_pipeline(folder: str | Path, seed: int = 0, sample_size: int = 16) -> Path:
    """Save a randomly initialised miniature SD pipeline (it makes noise) to ``folder``.

    For tests, benchmarks and offline smoke tests of the loading path: same layout as a
    downloaded SD 1.5 folder (unet, vae, text_encoder, tokenizer, scheduler,
    model_index.json), ~1 MB, native size ``sample_size * 2`` pixels. The CLIP tokenizer is
    built from an in-memory vocabulary (byte-level alphabet, its ``</w>`` forms and the
    start/end tokens) and a few merges, so nothing is downloaded.
    """
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(alphabet + [a + "</w>" for a in alphabet])}
    merges = [("a", "t</w>"), ("o", "f</w>"), ("p", "h"), ("ph", "o")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
            max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    unet = UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=sample_size * 2,
    )
    # SD 1.5's noise schedule ("scaled_linear", 0.00085 -> 0.012)
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    folder = Path(folder)
    pipe.save_pretrained(folder)
    return folder
