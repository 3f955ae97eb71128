"""One policy for names a user writes that become paths: manifest, variant and device
names, model file names, run tags.

The safe alphabet: ASCII letters, digits and ``. _ - +``, starting with a letter or a
digit, at most 64 characters. Nothing in it means anything to a shell, to make or to a
file system (no ``/``, no ``..`` component, no spaces, quotes, ``$``, backticks, ``%``,
newlines or non-ASCII look-alikes), so a checked name can be joined into a path or
passed as one argument without quoting. Names are checked where they enter (the YAML
loaders, the command line); paths built from them are checked again with
``join_inside`` before anything is written. Model files a manifest reads may live
anywhere, but their file names follow the alphabet too (they become names).
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from .errors import ConfigError

MAX_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")
ALPHABET = (f"1-{MAX_LENGTH} characters of A-Z a-z 0-9 . _ - +, starting with a letter or digit")


def is_safe(name) -> bool:
    return isinstance(name, str) and len(name) <= MAX_LENGTH and bool(_NAME.match(name))


def check_name(source, field: str, name) -> str:
    """`name` itself, or a ConfigError naming the file, the field, the value and the alphabet."""
    if not is_safe(name):
        raise ConfigError(source, field, f"a name of {ALPHABET}", _shown(name))
    return name


def check_model_file(source, field: str, value, directory: Path) -> Path:
    """A model file a manifest reads (``base``, a variant's ``file``), relative to the
    manifest's folder. It is only read, so it may live elsewhere (``../shared/x.onnx``),
    but its file name becomes a name (exported C symbols, build inputs, report labels)
    and must be a safe name; no part of the path may hold control characters.
    Returns the joined path."""
    what = f"a model file path whose file name is {ALPHABET}"
    if (not isinstance(value, str) or not value or any(ord(c) < 32 or c == "\x7f" for c in value)
            or value.endswith("/")):
        raise ConfigError(source, field, what, _shown(value))
    if not is_safe(PurePosixPath(value).name):
        raise ConfigError(source, field, what, _shown(value))
    return Path(directory) / value


def inside(directory: Path, path: Path) -> bool:
    """Whether `path` stays inside `directory` once both are resolved (symlinks, ``..``)."""
    root = Path(os.path.realpath(directory))
    target = Path(os.path.realpath(path))
    return target == root or root in target.parents


def join_inside(directory: Path, *parts: str) -> Path:
    """`directory`/parts, refused (ValueError) if a part is not a safe name or the result
    would leave `directory`: the last check before a derived path is written."""
    for part in parts:  # built from checked names, so longer than one name may be
        if not (isinstance(part, str) and len(part) <= 255 and _NAME.match(part)):
            raise ValueError(f"{part!r} is not a safe path component ({ALPHABET})")
    path = Path(directory, *parts)
    if not inside(directory, path):
        raise ValueError(f"{path} is outside {directory}")
    return path


def _shown(value):
    """The value as an error shows it: long values cut, so a hostile 10 kB name cannot
    flood a terminal (repr() in ConfigError makes newlines and escapes visible)."""
    if isinstance(value, str) and len(value) > 120:
        return value[:100] + f"... ({len(value)} characters)"
    return value
