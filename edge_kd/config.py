"""Strict construction of typed configs (profiles, recipes, stage configs) from plain dicts.

Every stage has one frozen dataclass config. ``from_dict`` builds it from a TOML/JSON mapping and
fails with a ConfigError naming the file and the dotted key for: an unknown key, a missing required
key, a wrong type, or a value that a field's parser rejects (units, ranges). Unit strings are parsed
once here, through ``field(metadata={"parse": ...})``, so the rest of the code sees plain numbers.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Mapping, TypeVar, get_args, get_origin, get_type_hints

from edge_kd.errors import ConfigError

C = TypeVar("C")

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def parsed(parse, **kwargs) -> Any:
    """A dataclass field whose raw value is converted by ``parse`` (which raises ValueError)."""
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata["parse"] = parse
    return dataclasses.field(metadata=metadata, **kwargs)


def _describe(tp: Any) -> str:
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    origin = get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin in (dict, Mapping):
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, source: str | None) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, source)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(
            f"expected {' or '.join(_describe(a) for a in args if a is not type(None))}, got {value!r}",
            source=source, key=key)
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"expected {_describe(tp)}, got {value!r}", source=source, key=key)
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a table, got {value!r}", source=source, key=key)
        return from_dict(tp, value, source=source, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", source=source, key=key)
        (item_tp, *_rest) = get_args(tp) or (Any,)
        items = [_convert(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a table, got {value!r}", source=source, key=key)
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", source=source, key=key)
        return float(value)
    if tp in (int, str, bool):
        if isinstance(value, bool) and tp is not bool or not isinstance(value, tp):
            raise ConfigError(f"expected {_describe(tp)}, got {value!r}", source=source, key=key)
        return value
    return value


def from_dict(cls: type[C], data: Mapping[str, Any], *, source: str | None = None, prefix: str = "") -> C:
    """Build dataclass ``cls`` from ``data`` strictly. Raises ConfigError naming ``source`` and the key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a table, got {data!r}", source=source, key=prefix.rstrip(".") or None)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, fields, n=1)
        hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown key{hint}; known keys here: {', '.join(sorted(fields))}",
                          source=source, key=prefix + k)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError("required key is missing", source=source, key=key)
            continue
        value = data[name]
        parse = f.metadata.get("parse")
        if parse is not None:
            try:
                kwargs[name] = parse(value)
            except (ValueError, TypeError) as exc:
                raise ConfigError(str(exc), source=source, key=key) from None
        else:
            kwargs[name] = _convert(value, hints[name], key, source)
    try:
        obj = cls(**kwargs)
    except ValueError as exc:  # __post_init__ range checks
        raise ConfigError(str(exc), source=source, key=prefix.rstrip(".") or None) from None
    return obj


def to_dict(obj: Any) -> Any:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            to_json = f.metadata.get("to_json")
            out[f.name] = to_json(v) if to_json is not None and v is not None else to_dict(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
