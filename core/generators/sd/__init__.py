"""Pretrained Stable Diffusion prompted with the class name, downscaled to the dataset.

The paper's strongest method (FID 6.56): Stable Diffusion makes 512 px images from
"a photo of a {class}", which are resized (antialiased) to the dataset's resolution.

One module per step, in the order a request takes them:

- ``weights``   where the weights are (models/, a folder, the HF cache, the hub); the offline error
- ``pipeline``  loading a diffusers pipeline once per process; dtypes; schedulers
- ``prompts``   the text prompt of each class
- ``generator`` ``SDGenerator``: sampling a class's images in seed order, screening them
  (the screening itself is ``core.generators.filtering``)
- ``downscale`` 512 px -> the dataset's size and channels
- ``sharding``  splitting a request across ``accelerate launch`` processes
- ``tiny``      a miniature random pipeline for tests and benchmarks

The names callers use are importable from ``core.generators.sd`` itself.
"""

from core.generators.sd.downscale import to_dataset_images
from core.generators.sd.generator import _OOM, SDGenerator
from core.generators.sd.pipeline import (
    DTYPES,
    LOAD_COUNT,
    SCHEDULERS,
    LoadedPipeline,
    clear_pipeline_cache,
    default_device,
    load_pipeline,
    make_scheduler,
    pick_dtype,
)
from core.generators.sd.prompts import DEFAULT_PROMPT, class_prompt
from core.generators.sd.sharding import distribution
from core.generators.sd.tiny import build_tiny_pipeline
from core.generators.sd.weights import (
    ALIASES,
    DEFAULT_MODEL,
    KNOWN_MODELS,
    ModelInfo,
    Source,
    download_command,
    folder_name,
    missing_error,
    models_folder,
    offline,
    resolve,
    sd_available,
)

__all__ = [
    "ALIASES", "DEFAULT_MODEL", "DEFAULT_PROMPT", "DTYPES", "KNOWN_MODELS", "LOAD_COUNT", "SCHEDULERS", "_OOM",
    "LoadedPipeline", "ModelInfo", "SDGenerator", "Source", "build_tiny_pipeline", "class_prompt",
    "clear_pipeline_cache", "default_device", "distribution", "download_command", "folder_name", "load_pipeline",
    "make_scheduler", "missing_error", "models_folder", "offline", "pick_dtype", "resolve", "sd_available",
    "to_dataset_images",
]
