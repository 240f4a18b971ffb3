"""Configuration as plain typed dataclasses, with unknown keys refused loudly (nanoGPT's rule).

cfg = from_dict(CellConfig, {"frames": 8, "tokens_per_frame": 4})   # a typo raises, naming the valid keys
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import TypeVar

T = TypeVar("T")


def refuse_unknown(keys, valid, what: str) -> None:
    """Raise ValueError naming the unknown keys and listing the valid ones."""
    unknown = sorted(set(keys) - set(valid))
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; valid: {sorted(valid)}")


def from_dict(cls: type[T], d: dict | T | None = None, **overrides) -> T:
    """Build dataclass `cls` from a mapping (or an instance) plus overrides, refusing unknown keys."""
    if not is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if isinstance(d, cls):
        base = d
    else:
        d = dict(d or {})
        refuse_unknown(d, [f.name for f in fields(cls)], cls.__name__)
        base = cls(**d)
    if overrides:
        refuse_unknown(overrides, [f.name for f in fields(cls)], cls.__name__)
        base = replace(base, **overrides)
    return base
