"""Fill every class up to a target count with a generator's images."""

from __future__ import annotations

from typing import Callable

from core.data.imageset import ImageSet
from core.errors import ConfigError
from core.generators.base import Cancelled, Generator


def fill_plan(counts: list[int], target: int | None = None) -> list[int]:
    """How many images each class needs: target (default: the largest class) minus its count."""
    target = max(counts) if target is None else int(target)
    if target <= 0:
        raise ConfigError(f"Target count {target} must be positive.", "Use a target >= 1, or leave it empty for the largest class.")
    return [max(0, target - n) for n in counts]


def balance(
    train: ImageSet,
    generator: Generator,
    target: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ImageSet:
    """``train`` plus generated images so that every class has ``target`` images.

    Provenance marks each new image with ``generator.name``. ``progress(done, total)``
    counts generated images over all classes.
    """
    need = fill_plan(train.counts(), target)
    if generator.name == "none":
        return train
    total, done, parts = sum(need), 0, [train]
    for c, k in enumerate(need):
        if k == 0:
            continue
        if should_stop and should_stop():
            raise Cancelled("balancing cancelled")
        base = done

        def class_progress(i: int, n: int, base=base) -> None:
            if progress:
                progress(base + i, total)

        parts.append(generator.generate(c, k, seed=seed, progress=class_progress, should_stop=should_stop))
        done += k
        if progress:
            progress(done, total)
    return ImageSet.concat(parts)
