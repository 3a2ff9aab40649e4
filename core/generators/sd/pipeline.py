"""Loading a diffusers text-to-image pipeline once per process, and its schedulers."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.errors import ConfigError, WeightsMissingError
from core.generators.sd.weights import DEFAULT_MODEL, KNOWN_MODELS, Source, download_command, missing_error, offline, resolve

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

