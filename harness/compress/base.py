"""What a compression technique is: ``build(ctx) -> BuildResult``, registered by name.

A technique reads the base model at ``ctx.base``, writes the variant's deployable model to
``ctx.out`` and returns what it learned (per-layer sparsity, ranks, bits, a compressed
storage size). Parameters come from a model manifest and are checked through
``ctx.param(...)``, so a bad value names the manifest, the variant and the field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import config_fields
from ..errors import ConfigError


@dataclass
class BuildContext:
    base: Path                       # the base model file (.onnx)
    out: Path                        # where the variant's model file must be written
    params: dict                     # the recipe's parameters, as written in the manifest
    source: str                      # "models/x.yaml: variants[3] (int8-static)" for errors
    calibration: Optional[np.ndarray] = None   # representative inputs, never evaluation data
    input_name: Optional[str] = None
    input_shape: Optional[list] = None
    # top-1 of a model file on calibration-side data, for sensitivity scans (never test data)
    evaluate: Optional[Callable[[Path], float]] = None
    # the manifest's training hook, if the model has one (fine-tuning); None = post-training
    train_hook: Optional[Callable] = None
    # representative feeds {input name: array} for every input (user .npz, dataset or generated)
    calibration_feeds: Optional[list] = None
    calibration_source: str = ""     # where they came from, shown in the compression table
    input_shapes: Optional[dict] = None   # {input name: the manifest's fixed shape}

    # the technique's option table (set as its build starts): param(key) reads from it
    options: dict = field(default_factory=dict)

    def param(self, key):
        """The manifest's parameter ``key``, checked against the technique's option table."""
        value = self.options[key].get(self.source, "params", self.params, key)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(self.source, f"params.{key}", "a finite number", value)
        return value

    def layer_param(self, key, layer_names, types, **limits) -> dict:
        """A per-layer choice ``{layer name: value}`` (e.g. bits or sparsity per layer); {} when
        absent. Each value is checked like ``param``; a name that is not a weight layer of the
        base model is refused with the known names."""
        mapping = config_fields.get(self.source, "params", self.params, key, dict, {})
        known = list(layer_names)
        for name in mapping:
            if name not in known:
                from ..errors import ConfigError

                raise ConfigError(self.source, f"params.{key}.{name}",
                                  "a weight layer of the base model (" + ", ".join(known) + ")", name)
        return {name: config_fields.get(self.source, f"params.{key}", mapping, name, types, **limits)
                for name in mapping}


@dataclass
class BuildResult:
    path: Path
    info: dict = field(default_factory=dict)     # technique facts for the store and report
    storage_bytes: Optional[int] = None          # compressed storage size, when not the file size


class Technique:
    """A registered technique: its build function, its parameters as an option table
    (registry.Option), the base formats it takes and a one-line description."""

    def __init__(self, name: str, build: Callable[[BuildContext], BuildResult], options=None,
                 formats=("onnx",), description: str = ""):
        self.name, self._build, self.description = name, build, description
        self.options = dict(options or {})
        self.formats = tuple(formats)

    @property
    def params(self) -> tuple:
        """The parameter names a manifest may give (typos are refused)."""
        return tuple(self.options)

    def build(self, ctx: BuildContext) -> BuildResult:
        ctx.options = self.options
        return self._build(ctx)

    def __repr__(self):
        return f"Technique({self.name!r}, {self._build.__module__}.{self._build.__qualname__})"
