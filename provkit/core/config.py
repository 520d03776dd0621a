"""One reader for every configuration: a dict (a TOML table, flags) -> a frozen dataclass.

:func:`build_dataclass` checks each key against the dataclass's fields and
each value against the field's type hint (:func:`coerce`), then constructs
the dataclass, whose ``__post_init__`` checks ranges and raises
``ConfigError("key: problem")``.  Every failure is one line naming where the
key lives (``pipeline.toml: steps[2].threshold: expected a number, got "high"``).

Type rules (the TOML value types): ``bool`` only from booleans; ``int`` from
integers (not booleans); ``float`` from integers or floats (converted);
``str`` from strings; ``list``/``tuple`` from arrays, item by item; a union
takes the first member that accepts the value; anything else is passed as is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Callable

from provkit.errors import ConfigError


def read_toml(path: str | Path, missing: str) -> dict[str, Any]:
    """The decoded TOML document at ``path``; ``missing`` is the error line when there is no such file."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(missing) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a usable TOML file (nested too deeply to parse)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def describe(tp: Any) -> str:
    """The type hint ``tp`` in words, for an error line (``an integer``, ``a number or a string``)."""
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return "a list"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp) if a is not type(None))
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value converted to ``tp``) under the type rules of the module docstring."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, out = coerce(value, arg)
            if ok:
                return True, out
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:  # finite only: NaN and inf would slip through every range check (nan < 0 is False)
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return number, float(value) if number else value
    if tp is str:
        return isinstance(value, str), value
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else Any
        if not isinstance(value, (list, tuple)):
            return False, value
        items = [coerce(v, inner) if inner is not Any else (True, v) for v in value]
        if not all(ok for ok, _ in items):
            return False, value
        converted = [v for _, v in items]
        return True, tuple(converted) if origin is tuple else converted
    return True, value


def build_dataclass(cls: type, values: dict[str, Any], where: Callable[[str], str], *, context: str = "",
                    nested: dict[str, Callable[[Any, Any], Any]] | None = None) -> dict[str, Any]:
    """The checked constructor arguments of ``cls`` from ``values`` (not yet constructed).

    ``where(key)`` names a key in an error line; ``context`` follows "unknown key"
    (e.g. `` for step 'tail'``).  ``nested[key](value, where)`` converts a key
    whose value is a table of its own (a nested dataclass).
    """
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where(key)}: unknown key{context}; expected one of {', '.join(sorted(known))}")
        if nested and key in nested:
            out[key] = nested[key](value, where)
            continue
        ok, converted = coerce(value, hints[key])
        if not ok and isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where(key)}: expected a finite number, got {value}")
        if not ok:
            raise ConfigError(f"{where(key)}: expected {describe(hints[key])}, got {json.dumps(value, default=str)}")
        out[key] = converted
    return out
