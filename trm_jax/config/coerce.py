"""Nested dicts (YAML) to trees of frozen dataclasses and back: type coercion, unknown-key errors with a
did-you-mean, every message naming the full key path.

Generic over dataclasses: a class names the field that collects the keys it does not declare in an
`EXTRA_KEYS` class attribute (`DataConfig.options`, a task's own keys), which `build` fills and
`to_plain` writes flat after the declared keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Literal, Optional, Sequence

from trm_jax.errors import ConfigError


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _did_you_mean(key: str, names: Sequence[str], path: str) -> str:
    """The did-you-mean of an unknown key: the closest of `names`, else all of them."""
    close = difflib.get_close_matches(str(key), list(names), n=1)
    return f" Did you mean '{_join(path, close[0])}'?" if close else f" Valid keys: {', '.join(names)}."


def declared_keys(cls) -> tuple[str, ...]:
    """The keys a config section declares (its fields, without the one collecting extra keys)."""
    extra = getattr(cls, "EXTRA_KEYS", None)
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != extra)


def build(cls, raw, path: str):
    """The dataclass `cls` from the mapping `raw` (values coerced to the field types); `path` is the
    section's key path for messages ("" at the root)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config key '{path or '<root>'}': expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = declared_keys(cls)
    extra = getattr(cls, "EXTRA_KEYS", None)
    kwargs, rest = {}, {}
    for key, value in raw.items():
        if key in names:
            kwargs[key] = coerce(hints[key], value, _join(path, key))
        elif extra is not None:
            rest[key] = value
        else:
            raise ConfigError(f"unknown config key '{_join(path, key)}'.{_did_you_mean(key, names, path)}")
    if extra is not None:
        kwargs[extra] = rest
    return cls(**kwargs)


def coerce(tp, value, path: str):
    """`value` as the type `tp` (int, float, str, bool, Literal, Optional, tuple[...], a dataclass), or a
    ConfigError naming `path`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(inner[0], value, path)
    if value is None:
        raise ConfigError(f"config key '{path}': must not be null")
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"config key '{path}': {value!r} is not one of {list(args)}.{hint}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}': expected a list, got {type(value).__name__}")
        return tuple(coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}': expected true/false, got {value!r}")
        return value
    # numbers.* also take NumPy scalars (keyword arguments of the Trainer, computed values)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            if isinstance(value, numbers.Real) and float(value).is_integer():
                return int(value)
            raise ConfigError(f"config key '{path}': expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `3e-4` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"config key '{path}': expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}': expected a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{path}': unsupported type {tp}")  # pragma: no cover


def to_plain(obj):
    """Dicts, lists and scalars of a config tree (what YAML and JSON write); the keys of a section's
    EXTRA_KEYS field come flat, after its declared keys."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {name: to_plain(getattr(obj, name)) for name in declared_keys(obj)}
        extra: Optional[str] = getattr(obj, "EXTRA_KEYS", None)
        if extra is not None:
            out.update(to_plain(getattr(obj, extra)))
        return out
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
