"""Generators: one interface for every way of making minority-class images, filling a training set
with them (``balance``), and exporting a trained CFG generator as a diffusers folder (``export``)."""

from core.generators.base import Generator
from core.generators.registry import METHODS, build_generator

__all__ = ["METHODS", "Generator", "build_generator"]
