"""Generators: one interface for every way of making minority-class images."""

from core.generators.base import METHODS, Generator, build_generator

__all__ = ["METHODS", "Generator", "build_generator"]
