"""Where Stable Diffusion weights are, and the offline error that says what to fetch.

Weights come from a folder under ``models/`` (``models/<name>`` for hub id
``<owner>/<name>``), a folder given by path, the Hugging Face cache, or (online only) the
hub. Offline without weights, :class:`WeightsMissingError` says what to fetch and where.
Nothing here loads a model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError, WeightsMissingError
from core.paths import data_root, models_dir

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

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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
    for path in (Path(model).expanduser(), data_root() / model):  # relative to the project (a checkout) or the working folder
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


