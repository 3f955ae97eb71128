"""Reading the harness's YAML files (devices, model manifests) strictly: a key written twice
in one mapping is an error naming both lines, not a silent "the last one wins"."""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key, first_line: int, second_line: int):
        self.key, self.first_line, self.second_line = key, first_line, second_line
        super().__init__(f"key {key!r} appears twice in one mapping (lines {first_line} and {second_line})")


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (`<<` merges may still be overridden)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: PyYAML's own constructor reports it
            continue
        line = key_node.start_mark.line + 1
        if first is not None:
            raise DuplicateKey(key, first, line)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def loads(text: str, source):
    """Parse YAML text; every problem is a ConfigError naming `source` and the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except DuplicateKey as exc:
        raise ConfigError(source, f"line {exc.second_line}", "each key once per mapping", None,
                          f"duplicate key {exc.key!r}: first on line {exc.first_line}, again on line "
                          f"{exc.second_line}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(source, where, "valid YAML", None, getattr(exc, "problem", None) or str(exc)) from None


def load(path: Path, what: str = "a readable YAML file"):
    """Read and parse one YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "(file)", what, None, str(exc)) from None
    return loads(text, path)
