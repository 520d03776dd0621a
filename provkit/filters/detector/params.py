"""Strict reading of detector settings from JSON: known keys, expected types, one-line errors."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

from provkit.core.progress import Advance as Progress  # the one progress protocol; called with texts just done
from provkit.errors import ProvkitError

T = TypeVar("T")


class DetectorError(ProvkitError):
    """A detector that cannot be trained, saved or loaded, with a one-line reason."""


def _coerce(value: Any, default: Any, where: str) -> Any:
    """``value`` checked against the type of the field's ``default`` (JSON lists become tuples)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default) and all(
            isinstance(v, type(d)) and not isinstance(v, bool) for v, d in zip(value, default)
        )
        value = tuple(value) if ok else value
    else:  # str or None defaults take a string or null
        ok = value is None or isinstance(value, str)
    if not ok:
        raise DetectorError(f"{where}: expected {type(default).__name__}, got {type(value).__name__} {value!r:.60}")
    return value


def dataclass_from_params(cls: type[T], params: Any, where: str) -> T:
    """Build dataclass ``cls`` from a JSON object, rejecting unknown keys and wrong types.

    Only fields with ``init=True`` are read; a missing key keeps the field's default.
    """
    if not isinstance(params, Mapping):
        raise DetectorError(f"{where}: expected a JSON object, got {type(params).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}  # type: ignore[arg-type]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise DetectorError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(fields))}")
    values = {}
    for name, value in params.items():
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        values[name] = _coerce(value, default, f"{where}.{name}")
    return cls(**values)


def params_of(obj: Any) -> dict[str, Any]:
    """The init fields of a dataclass instance as JSON values (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(obj):
        if f.init and not f.name.startswith("_"):
            value = getattr(obj, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
