"""Small checks used where YAML and CLI input enters: each failure names file, field, value."""
from __future__ import annotations

import difflib
from typing import Any, Iterable

from .errors import ConfigError

_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list", dict: "a mapping"}


def describe(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(_TYPE_WORDS.get(t, t.__name__) for t in types)


def check_keys(source, where: str, mapping: Any, allowed: Iterable[str], required: Iterable[str] = ()):
    """Refuse unknown keys (typos) and missing required ones."""
    allowed = list(allowed)
    if not isinstance(mapping, dict):
        raise ConfigError(source, where or "(top level)", "a mapping", type(mapping).__name__)
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            raise ConfigError(source, _join(where, key), f"a known field ({hint})", None, "unknown field")
    for key in required:
        if key not in mapping:
            raise ConfigError(source, _join(where, key), "this required field", None, "it is missing")


def get(source, where: str, mapping: dict, key: str, types, default=None, *, choices=None,
        minimum=None, maximum=None, required=False):
    """Fetch mapping[key], checked for type, range and allowed values."""
    field = _join(where, key)
    if key not in mapping or mapping[key] is None:
        if required:
            raise ConfigError(source, field, describe(types), None, "it is missing")
        return default
    value = mapping[key]
    types_t = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, types_t) and not (isinstance(value, bool) and bool not in types_t)
    if not ok and float in types_t and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(source, field, describe(types), value)
    if choices is not None and value not in choices:
        raise ConfigError(source, field, "one of " + ", ".join(map(str, choices)), value)
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        span = f"{minimum if minimum is not None else '-inf'}..{maximum if maximum is not None else 'inf'}"
        raise ConfigError(source, field, f"{describe(types)} in {span}", value)
    return value


def get_list(source, where: str, mapping: dict, key: str, item_types, default=(), choices=None) -> list:
    values = get(source, where, mapping, key, list, list(default))
    for i, item in enumerate(values):
        if not isinstance(item, item_types) or isinstance(item, bool):
            raise ConfigError(source, f"{_join(where, key)}[{i}]", describe(item_types), item)
        if choices is not None and item not in choices:
            raise ConfigError(source, f"{_join(where, key)}[{i}]", "one of " + ", ".join(choices), item)
    return values


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)
