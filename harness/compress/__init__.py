"""Compression techniques as variant generators: one module per technique.

Each module registers itself with ``@technique(name, params=...)``; a model manifest names
the technique and its parameters. Third parties register through the
``harness.techniques`` entry-point group.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .base import BuildContext, BuildResult, Technique

# module that defines each built-in technique (imported on first use)
_BUILTIN_MODULES = (
    "harness.compress.precision",
    "harness.compress.pruning",
    "harness.compress.deep_compression",
    "harness.compress.structured",
    "harness.compress.low_rank",
    "harness.compress.ternary",
    "harness.compress.fixed_point",
    "harness.compress.mixed_precision",
)
_registry: dict[str, Technique] = {}
_loaded = False


def technique(name: str, params=(), formats=("onnx",), description=""):
    def decorator(fn):
        _registry[name] = Technique(name=name, build=fn, params=tuple(params), formats=tuple(formats),
                                    description=description or (fn.__doc__ or "").strip().splitlines()[0])
        return fn
    return decorator


def _load():
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group="harness.techniques"):
        ep.load()


def techniques() -> dict[str, Technique]:
    _load()
    return dict(_registry)


def get_technique(name: str) -> Technique:
    _load()
    if name not in _registry:
        raise KeyError(name)
    return _registry[name]


__all__ = ["BuildContext", "BuildResult", "Technique", "technique", "techniques", "get_technique"]
