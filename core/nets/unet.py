"""The class-conditional UNet of the CFG generator: ``diffusers.UNet2DModel`` presets.

One network learns both branches of classifier-free guidance (Ho & Salimans 2022):
class embedding rows 0..C-1 are the classes and row C is the *null* label used for
the unconditional branch ε(x) (the paper's label dropout, p_uncond). Pure nn.Module
construction, no I/O.

Presets (parameters counted for 10 classes):

* ``tiny``  16x16-32x32 on a CPU in minutes (the embedded digits set), ~1.1M
* ``small`` CIFAR-10 on one GPU in minutes, ~6.7M
* ``ddpm``  the DDPM CIFAR-10 network (Ho et al. 2020: ch=128, mult 1,2,2,2, two res
  blocks per level, attention at 16x16, dropout 0.1), ~35.7M
"""

from __future__ import annotations

from core.errors import ConfigError

PRESETS: dict[str, dict] = {
    "tiny": dict(
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=32,
        norm_num_groups=16,
        dropout=0.0,
    ),
    "small": dict(
        block_out_channels=(64, 128, 128),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=64,
        norm_num_groups=32,
        dropout=0.1,
    ),
    "ddpm": dict(
        block_out_channels=(128, 256, 256, 256),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=256,  # one head, as in the DDPM code
        norm_num_groups=32,
        dropout=0.1,
    ),
}

PRESET_HELP = {
    "tiny": "~1M parameters; digits on a CPU in minutes",
    "small": "~7M parameters; CIFAR-10 on one GPU in minutes",
    "ddpm": "~36M parameters; the DDPM CIFAR-10 network, paper-scale runs",
}


def build_unet(preset: str, num_classes: int, channels: int, image_size: int):
    """A UNet2DModel with ``num_classes + 1`` class embeddings (the last is the null label)."""
    from diffusers import UNet2DModel  # imported here so the CLI's --help stays fast

    if preset not in PRESETS:
        raise ConfigError(f"Unknown model preset '{preset}'.", f"Choose one of: {', '.join(PRESETS)}.")
    if num_classes < 2:
        raise ConfigError(f"A class-conditional model needs at least 2 classes, got {num_classes}.", "Use a dataset with two or more classes.")
    p = PRESETS[preset]
    levels = len(p["block_out_channels"])
    factor = 2 ** (levels - 1)
    if image_size % factor or image_size < factor * 2:
        raise ConfigError(
            f"Preset '{preset}' halves the resolution {levels - 1} times, so the image size must be a multiple of {factor} "
            f"(at least {factor * 2}); got {image_size}.",
            f"Pass --image-size {max(factor * 2, round(image_size / factor) * factor)} or pick another preset.",
        )
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        num_class_embeds=num_classes + 1,  # row C = null label (unconditional branch)
        **p,
    )


def null_class(model) -> int:
    """Index of the null (unconditional) label of a model built by :func:`build_unet`."""
    return int(model.config.num_class_embeds) - 1
