"""Classifier networks: torchvision ResNet18/50 (optional CIFAR stem) and a small ResNet (full or half width).

Pure ``nn.Module`` code, no I/O. The CIFAR stem (He et al. 2016, §4.2; the usual
CIFAR-10 ResNet setup) replaces the 7x7/stride-2 conv and the max-pool with a 3x3/
stride-1 conv, so 32 px inputs are not shrunk to 8 px before the first block.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18, resnet50
from torchvision.models.resnet import BasicBlock

from core.errors import ConfigError

ARCHS = {
    "small": "small ResNet (3 stages of one BasicBlock, widths 32/64/128; ~0.3 M params) for CPU presets",
    "tiny": "the small ResNet at half width (16/32/64; ~0.08 M params): 2.7x its training speed on one CPU thread at 8 px",
    "resnet18": "torchvision ResNet18 (11 M params)",
    "resnet50": "torchvision ResNet50 (24 M params)",
}


class SmallResNet(nn.Module):
    """conv3x3 stem -> 3 stages of BasicBlock (torchvision's) -> global average pool -> linear."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != w:
                down = nn.Sequential(nn.Conv2d(cin, w, 1, stride, bias=False), nn.BatchNorm2d(w))
            stages.append(BasicBlock(cin, w, stride=stride, downsample=down))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def build_classifier(arch: str, num_classes: int, in_channels: int = 3, cifar_stem: bool = True) -> nn.Module:
    """A randomly initialised classifier for ``in_channels``-channel images."""
    if arch == "small":
        return SmallResNet(in_channels, num_classes)
    if arch == "tiny":
        return SmallResNet(in_channels, num_classes, widths=(16, 32, 64))
    if arch not in ("resnet18", "resnet50"):
        raise ConfigError(f"Unknown classifier '{arch}'.", f"Choose one of: {', '.join(ARCHS)}.")
    net = (resnet18 if arch == "resnet18" else resnet50)(weights=None, num_classes=num_classes)
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net
