"""Downscaling the pipeline's 512 px images to the dataset's size and channels."""

from __future__ import annotations

import torch

from core.errors import ConfigError


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
