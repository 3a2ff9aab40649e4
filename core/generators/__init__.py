"""Generators: one interface for every way of making minority-class images."""

from core.generators.base import Generator
from core.generators.registry import METHODS, build_generator

__all__ = ["METHODS", "Generator", "build_generator"]
