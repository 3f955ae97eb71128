"""Compression techniques as variant generators: one module per technique.

Each module registers its techniques with ``@technique(name, options={...})``, the one
place a technique's name and its parameters are written (``registry.Option``: type,
default, help, allowed values; docs/options.md is generated from them). A model manifest
names the technique and its parameters. Third parties register with the same decorator or
through the ``harness.techniques`` entry-point group.
"""
from __future__ import annotations

from ..registry import Registry
from .base import BuildContext, BuildResult, Technique

technique_registry = Registry("technique", "harness.techniques", modules=(
    "harness.compress.precision",
    "harness.compress.pruning",
    "harness.compress.deep_compression",
    "harness.compress.structured",
    "harness.compress.low_rank",
    "harness.compress.ternary",
    "harness.compress.fixed_point",
    "harness.compress.mixed_precision",
))


def technique(name: str, options=None, formats=("onnx",), description=""):
    """Register ``build(ctx) -> BuildResult`` as technique ``name``; ``options``: its
    parameters as an option table (registry.Option), which ``ctx.param(key)`` reads."""
    table = dict(options or {})

    def decorator(fn):
        technique_registry.register(name, Technique(
            name=name, build=fn, options=table, formats=tuple(formats),
            description=description or next(iter((fn.__doc__ or "").strip().splitlines()), "")),
            module=fn.__module__)
        return fn
    return decorator


def techniques() -> dict[str, Technique]:
    return dict(technique_registry.items())


def get_technique(name: str) -> Technique:
    """The technique registered as ``name``; UnknownName (a KeyError) naming the known ones."""
    return technique_registry.get(name)


__all__ = ["BuildContext", "BuildResult", "Technique", "technique", "techniques", "get_technique",
           "technique_registry"]
