"""Fill every class up to a target count with a generator's images.

This sits above the generators and below the callers that train on the result (the job
runners, the study, the CLI): a training loop takes the finished set and never balances.
"""

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


def train_set_info(method: str, params: dict | None = None, target: int | None = None) -> dict:
    """What a classifier run records about how its training set was made (config.json keys
    the report and the pages read: ``balance_method``, ``balance_params``, ``balance_target``)."""
    return {"balance_method": method, "balance_params": dict(params or {}), "balance_target": target}


def balanced_train_set(
    imbalanced: ImageSet,
    method: str,
    params: dict | None = None,
    target: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ImageSet:
    """``imbalanced`` filled by the generator named ``method`` (core.generators.registry);
    ``"none"`` returns it as is."""
    if method == "none":
        return imbalanced
    from core.generators.registry import build_generator  # lazily: cfg/sd pull in diffusers

    gen = build_generator(method, imbalanced, **(params or {}))
    return balance(imbalanced, gen, target, seed=seed, progress=progress, should_stop=should_stop)
