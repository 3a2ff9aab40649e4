"""Prompting: one text prompt per class, from a template and optional per-class overrides.

The paper prompts Stable Diffusion with "a photo of a {class}"; ``{class}`` becomes the
class name with "_" read as a space.
"""

from __future__ import annotations

from core.errors import ConfigError

DEFAULT_PROMPT = "a photo of a {class}"


def check_template(template: str, overrides: dict[int, str], n_classes: int) -> None:
    """A template without {class} would give every class the same prompt unless each is overridden."""
    if "{class}" not in template and len(overrides) < n_classes:
        raise ConfigError(
            f"The prompt template '{template}' has no {{class}} placeholder, so every class would get the same prompt.",
            "Put {class} where the class name goes (e.g. 'a photo of a {class}'), or give a prompt for every class.",
        )


def class_prompt(template: str, overrides: dict[int, str], classes: list[str], class_idx: int) -> str:
    """The prompt for ``class_idx``: its override, else the template with the class name filled in."""
    if class_idx in overrides:
        return overrides[class_idx]
    return template.replace("{class}", classes[class_idx].replace("_", " "))
