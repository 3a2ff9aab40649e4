"""The registry of generators: a method name -> a :class:`~core.generators.base.Generator`.

It sits above the generators (each of which knows only ``core.generators.base``), so the
base never imports its own implementations. The diffusion generators (cfg, sd) are
imported only when asked for: they pull in diffusers / transformers.
"""

from __future__ import annotations

from core.data.imageset import ImageSet
from core.errors import ConfigError
from core.generators.base import Generator
from core.generators.baselines import BASELINES

# method name -> short description (what the UI and the experiment config accept)
METHODS = {
    "none": "the imbalanced set as is (the reference every method must beat)",
    "oversample": "random duplication of real minority images",
    "mixup": "Mixup of two real images (paper: fixed λ = 0.6)",
    "cutmix": "CutMix of two real images (paper: box area from λ = 0.6)",
    "cfg": "class-conditional DDPM with classifier-free guidance, trained on the imbalanced set",
    "sd": "pretrained Stable Diffusion prompted with the class name",
}


def build_generator(method: str, train: ImageSet, **params) -> Generator:
    """Make a generator by method name. ``train`` is the imbalanced split it fills."""
    if method in ("none", "oversample", "mixup", "cutmix"):
        return BASELINES[method](train, **params)
    if method == "cfg":
        from core.generators.cfg import CFGGenerator  # lazily: pulls in diffusers

        # the train split's shape is passed so a checkpoint from another dataset is refused
        return CFGGenerator(**{"classes": train.classes, "channels": train.channels, "image_size": train.image_size, **params})
    if method == "sd":
        from core.generators.sd import SDGenerator  # lazily: pulls in transformers

        return SDGenerator(classes=train.classes, channels=train.channels, image_size=train.image_size, **params)
    raise ConfigError(f"Unknown method '{method}'.", f"Choose one of: {', '.join(METHODS)}.")
