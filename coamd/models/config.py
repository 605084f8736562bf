"""Model configurations as plain dataclasses: saved with the weights, overrides reject unknown keys.

Every model config in ``coamd.models`` derives from :class:`ModelConfig`, so a checkpoint stores
``{"config": cfg.to_dict(), "state_dict": ...}`` and ``Cfg.from_dict(d)`` rebuilds the model.
"""
from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

C = TypeVar("C", bound="ModelConfig")


@dataclasses.dataclass
class ModelConfig:
    """Base class: ``to_dict``, ``from_dict`` and ``replace`` (overrides) with key checking."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Build from a dict; raises ValueError naming unknown keys."""
        return cls().replace(**d)

    def replace(self: C, **overrides: Any) -> C:
        """A copy with ``overrides`` applied; raises ValueError on keys the config does not have."""
        names = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} key(s) {unknown}; valid keys: {sorted(names)}")
        fixed = {}
        for k, v in overrides.items():
            default = getattr(self, k)
            fixed[k] = tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v
        return dataclasses.replace(self, **fixed)
