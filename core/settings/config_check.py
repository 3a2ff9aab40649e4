"""Strict configs: every key known, every value of its type and within its range.

One rule for every config the lab reads: a run's ``config.json`` (core.settings.jobconfig), the CLI's
``--config`` files and ``--method-params``, a study TOML and each of its nested tables
(core.study.config). An unknown key is refused with the nearest valid name ("did you mean
`steps`?", difflib), a value of the wrong type or outside its range (core.settings.bounds.CONFIG_BOUNDS,
the one table of ranges) with what is allowed.

Types come from the dataclass a table fills (its field annotations), or for the tables that are
keyword arguments of a generator, from ``KWARGS`` below (tests/test_strict_config.py checks it
against the generators' signatures).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import Iterable

from core.settings.bounds import CONFIG_BOUNDS
from core.errors import ConfigError

# generator arguments that the caller sets itself (the generated set's shape, the device, the run folder, w)
SET_BY_CALLER = ("run_dir", "w", "device", "classes", "channels", "image_size", "filter_classifier")
_MIXING = {"lam": "float | None", "alpha": "float | None", "pairing": "str"}
_CFG_SAMPLE = {"sampler": "str", "steps": "int", "batch_size": "int | None", "checkpoint": "str", "w_per_class": "list[float] | None",
               "w_gamma": "float", "w_max": "float | None"}
_SD = {"model": "str", "prompt": "str", "class_prompts": "dict | None", "negative_prompt": "str", "w": "float", "steps": "int",
       "scheduler": "str", "batch_size": "int", "resolution": "int | None", "dtype": "str", "attention_slicing": "bool",
       "vae_tiling": "bool", "cpu_offload": "bool", "safety_checker": "bool", "max_attempts": "float"}
# generator keyword arguments a config may set: table -> {key: type}
KWARGS: dict[str, dict[str, str]] = {
    "cfg_sample": _CFG_SAMPLE,  # a study's [cfg_sample]: CFGGenerator's sampling settings
    "method_params.none": {},
    "method_params.oversample": {},
    "method_params.mixup": _MIXING,
    "method_params.cutmix": _MIXING,
    "method_params.cfg": {},  # a study samples its CFG fills with [cfg_sample] at each of cfg_ws
    "method_params.sd": _SD,
}
# `train-classifier --method cfg|sd --method-params JSON`: the generator's own arguments
CLI_METHOD_PARAMS: dict[str, dict[str, str]] = {
    **KWARGS,
    "method_params.cfg": {"run_dir": "str", "w": "float", "device": "str | None", **_CFG_SAMPLE},
    "method_params.sd": {**_SD, "device": "str | None"},
}
_HINTS = {"method_params.cfg": "A study samples its CFG fills with [cfg_sample] (sampler, steps, batch_size) at each w of cfg_ws."}


def nearest(key: str, known: Iterable[str]) -> str | None:
    """The known name closest to a mistyped one (difflib), or None if none is close."""
    match = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return match[0] if match else None


def check_keys(where: str, d: dict, known: Iterable[str], hint: str | None = None) -> None:
    """ConfigError naming every key of ``d`` not in ``known``, each with its nearest valid name."""
    known = list(known)
    unknown = sorted((k for k in d if k not in known), key=str)
    if not unknown:
        return
    parts = []
    for k in unknown:
        near = nearest(k, known)
        parts.append(f"`{k}`" + (f" (did you mean `{near}`?)" if near else ""))
    listing = f"Known: {', '.join(sorted(known))}." if known else f"{where} takes no options."
    raise ConfigError(f"Unknown {where} option{'s' if len(parts) > 1 else ''}: {', '.join(parts)}.",
                      f"Correct the spelling, or remove it. {listing}" + (f" {hint}" if hint else ""))


def _kinds(annotation) -> set[str]:
    """'list[int] | None' -> {'list', 'None'}; a type -> its name."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return {p.strip().split("[")[0] for p in text.split("|")}


def _type_error(where: str, key: str, value, kinds: set[str]) -> ConfigError:
    names = {"int": "a whole number", "float": "a number", "str": "text", "bool": "true or false", "list": "a list", "dict": "a table",
             "None": "left out (null)"}
    want = " or ".join(names.get(k, k) for k in sorted(kinds, key=lambda k: k == "None"))
    return ConfigError(f"{where} {key} = {value!r} has the wrong type: it must be {want}.", f"Write {key} as {want}.")


def check_value(where: str, key: str, value, annotation, table: str | None = None):
    """``value`` checked against its type and its range in CONFIG_BOUNDS[table]; returns it (a whole
    float for an int field comes back as an int). ConfigError naming the key, the value and what is allowed."""
    kinds = _kinds(annotation)
    if value is None:
        if "None" in kinds or "Any" in kinds:
            return None
        raise _type_error(where, key, value, kinds)
    if isinstance(value, bool):
        if "bool" not in kinds and "Any" not in kinds:
            raise _type_error(where, key, value, kinds)
        return value
    if isinstance(value, (int, float)):
        if "float" in kinds and not ("int" in kinds and isinstance(value, int)):
            value = float(value)
        elif "int" in kinds:
            if isinstance(value, float):
                if not (math.isfinite(value) and value == int(value)):
                    raise _type_error(where, key, value, kinds)
                value = int(value)
        elif "Any" not in kinds:
            raise _type_error(where, key, value, kinds)
        _check_range(where, key, value, table)
        return value
    if isinstance(value, str):
        if kinds & {"str", "Any"}:
            return value
        raise _type_error(where, key, value, kinds)
    if isinstance(value, (list, tuple)):
        if not kinds & {"list", "tuple", "Any"}:
            raise _type_error(where, key, value, kinds)
        inner = _item_kind(annotation)  # list[int] -> "int": each entry of that type, as a scalar field would be
        if inner is not None:
            return [check_value(where, key, v, inner, table) if v is not None else _none_in_list(where, key, inner) for v in value]
        for v in value:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                _check_range(where, key, v, table)
        return list(value)
    if isinstance(value, dict):
        if kinds & {"dict", "Any"} or not kinds & {"int", "float", "str", "bool", "list", "None"}:
            return value  # a nested table (data): checked by its own table
        raise _type_error(where, key, value, kinds)
    if "Any" in kinds:
        return value
    raise _type_error(where, key, value, kinds)  # a TOML date or time, or anything else no field takes


def _item_kind(annotation) -> str | None:
    """The entry type of a ``list[int]``-like annotation (int, float or str), else None."""
    m = re.search(r"list\[(int|float|str)\]", annotation if isinstance(annotation, str) else str(annotation))
    return m.group(1) if m else None


def _none_in_list(where: str, key: str, inner: str):
    raise _type_error(where, key, None, {inner})


def _check_range(where: str, key: str, value: float, table: str | None) -> None:
    b = CONFIG_BOUNDS.get(table or "", {}).get(key)
    if b is None:
        if not math.isfinite(value):
            raise ConfigError(f"{where} {key} = {value!r} is not a finite number.", f"Give {key} a finite value.")
        return
    if not (math.isfinite(value) and b.lo <= value <= b.hi):
        shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        raise ConfigError(f"{where} {key} = {shown} is out of range: allowed {b.text()}.", f"Set {key} {b.text()}.")


def field_types(cls) -> dict[str, str]:
    """{field: annotation} of a dataclass."""
    return {f.name: f.type for f in dataclasses.fields(cls)}


def check_table(where: str, d, types: dict, table: str | None = None, hint: str | None = None, drop: Iterable[str] = ()) -> dict:
    """A config table checked key by key: ``d`` must be a table whose keys are in ``types`` (minus
    ``drop``), each value of its type and range (CONFIG_BOUNDS[table]). Returns the checked copy."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where} = {d!r} must be a table of settings.", f"Write it as a TOML table, e.g. {where} with key = value lines.")
    known = {k: t for k, t in types.items() if k not in set(drop)}
    check_keys(where, d, known, hint or _HINTS.get(table or ""))
    return {k: check_value(where, k, v, known[k], table) for k, v in d.items()}


def check_kwargs(table: str, d, where: str | None = None, schema: dict[str, dict[str, str]] | None = None) -> dict:
    """A generator's keyword arguments (``cfg_sample``, ``method_params.<method>``) checked like a table."""
    schema = KWARGS if schema is None else schema
    if table not in schema:
        raise ConfigError(f"No options are known for {table}.", "Remove the table.")
    return check_table(where or f"[{table}]", d, schema[table], table)
