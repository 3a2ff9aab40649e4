"""What every job config dataclass shares: a nested :class:`DataConfig` in ``data``,
saved as plain JSON with the run and read back from it."""

from __future__ import annotations

from dataclasses import asdict

from core.settings.config_check import check_table, field_types
from core.data.loading import DataConfig

# what a saved config.json holds besides the job's own settings (core.store.runs.META_KEYS; tests/test_strict_config.py checks they agree)
META = ("kind", "created", "provenance", "regated")


def data_from_dict(d, where: str = "[data]") -> DataConfig:
    """A ``data`` table, strictly: unknown keys refused (with the nearest name), types and ranges checked."""
    return DataConfig.from_dict(check_table(where, d if d is not None else {}, field_types(DataConfig), "data"))


class JobConfig:
    """Mixin for ``@dataclass`` job configs that hold ``data: DataConfig``.

    ``TABLE`` names the config's entry in core.settings.bounds.CONFIG_BOUNDS (its ranges)."""

    TABLE: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)  # recurses into ``data``

    @classmethod
    def from_dict(cls, d: dict, where: str | None = None):
        """Strict: a key the dataclass does not know is refused with the nearest valid name, and every
        value is checked against its field's type and its range (core.settings.config_check). What a saved
        config.json adds besides the settings (``kind``, ``created``, ``provenance``) is skipped."""
        where = where or f"{cls.TABLE or cls.__name__} config"
        d = {k: v for k, v in d.items() if k not in META}
        if "data" in d and d["data"] is None:
            d["data"] = {}
        known = check_table(where, d, field_types(cls), cls.TABLE)
        if "data" in known:
            known["data"] = data_from_dict(known["data"]) if not isinstance(known["data"], DataConfig) else known["data"]
        return cls(**known)
