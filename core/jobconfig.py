"""What every job config dataclass shares: a nested :class:`DataConfig` in ``data``,
saved as plain JSON with the run and read back from it."""

from __future__ import annotations

from dataclasses import asdict

from core.data.loading import DataConfig


class JobConfig:
    """Mixin for ``@dataclass`` job configs that hold ``data: DataConfig``."""

    def to_dict(self) -> dict:
        return asdict(self)  # recurses into ``data``

    @classmethod
    def from_dict(cls, d: dict):
        """Lenient: keys the dataclass does not know (``kind``, ``created``, ...) are ignored."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        data = known.get("data")
        if isinstance(data, dict) or ("data" in known and data is None):
            known["data"] = DataConfig.from_dict(data or {})
        return cls(**known)
