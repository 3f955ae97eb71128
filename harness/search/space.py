"""The search space: a manifest's ``search:`` section, checked once, and how a trial samples it.

    search:
      objectives: [accuracy, p90]              # harness.search.objectives: what to optimise
      budgets: ["p90 < 5 ms", "accuracy drop < 1 pt"]
      sampler: nsga2                           # nsga2 | tpe
      seed: 1
      population: 8                            # NSGA-II generation size
      techniques:
        fixed-point:
          layer_bits: {per_layer: true, choices: [4, 6, 8]}    # one choice per weight layer
          activation_bits: {choices: [8, 16]}
        prune-magnitude:
          layer_sparsity: {per_layer: true, low: 0.0, high: 0.9, step: 0.1}
          sensitivity: false                   # anything else is a fixed parameter
          fine_tune: false

A searched parameter is a mapping of ``low``/``high`` (with ``step``, ``log``) or ``choices``;
``per_layer: true`` makes it one value per weight layer of the base model (``layers:``
restricts which), given to the technique as ``{layer name: value}``. Every other value is
passed to the technique as written. A trial first chooses a technique, then its values;
optuna names them ``technique`` and ``<technique>.<param>`` or ``<technique>.<param>[<layer>]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from .. import config_fields
from ..errors import ConfigError
from .objectives import parse_budget, parse_objective

SAMPLERS = ("nsga2", "tpe")
RANGE_KEYS = ("low", "high", "step", "log", "choices", "per_layer", "layers")


@dataclass(frozen=True)
class Dimension:
    """One value a trial chooses."""

    name: str                    # optuna's parameter name
    low: Optional[float] = None
    high: Optional[float] = None
    step: Optional[float] = None
    log: bool = False
    choices: Optional[tuple] = None
    integer: bool = False

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class SearchedParam:
    param: str
    layers: tuple                # () for one value; else one Dimension per layer, in this order
    dimensions: tuple


@dataclass(frozen=True)
class TechniqueSpace:
    technique: str
    fixed: dict
    searched: tuple              # SearchedParam...

    def sample(self, trial) -> dict:
        params = dict(self.fixed)
        for p in self.searched:
            if p.layers:
                params[p.param] = {layer: d.suggest(trial) for layer, d in zip(p.layers, p.dimensions)}
            else:
                params[p.param] = p.dimensions[0].suggest(trial)
        return params


@dataclass(frozen=True)
class SearchSpec:
    source: str
    techniques: tuple            # TechniqueSpace...
    objectives: tuple            # Objective...
    budgets: tuple               # Budget...
    sampler: str = "nsga2"
    seed: int = 0
    population: int = 8

    def sample(self, trial) -> tuple[str, dict]:
        """(technique, params) for an optuna trial (or anything with its suggest_* methods)."""
        names = [t.technique for t in self.techniques]
        name = names[0] if len(names) == 1 else trial.suggest_categorical("technique", names)
        space = next(t for t in self.techniques if t.technique == name)
        return name, space.sample(trial)

    @property
    def directions(self) -> list:
        return [o.direction for o in self.objectives]


def load_search(manifest) -> SearchSpec:
    """The ``search:`` section of ``manifest`` (a harness.variant_build.Manifest), checked against the
    registered techniques and the base model's weight layers."""
    src = str(manifest.source)
    try:
        data = yaml.safe_load(Path(manifest.source).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(src, "(file)", "a readable model manifest", None, str(exc)) from None
    if "search" not in data:
        raise ConfigError(src, "search", "a search: section (techniques, objectives, budgets)", None,
                          "it is missing; docs/search.md shows one")
    section = data["search"]
    config_fields.check_keys(src, "search", section, ("techniques", "objectives", "budgets", "sampler", "seed",
                                               "population"), required=("techniques", "objectives"))
    objectives = [parse_objective(src, f"search.objectives[{i}]", o)
                  for i, o in enumerate(config_fields.get_list(src, "search", section, "objectives", str))]
    if not objectives:
        raise ConfigError(src, "search.objectives", "at least one objective", [])
    if len({o.name for o in objectives}) != len(objectives):
        raise ConfigError(src, "search.objectives", "each objective once", [o.name for o in objectives])
    budgets = tuple(parse_budget(src, f"search.budgets[{i}]", b)
                    for i, b in enumerate(config_fields.get_list(src, "search", section, "budgets", str)))
    techniques = config_fields.get(src, "search", section, "techniques", dict, required=True)
    if not techniques:
        raise ConfigError(src, "search.techniques", "at least one technique", {})
    layers = _base_layers(manifest)
    spaces = tuple(_technique_space(src, name, params, layers) for name, params in techniques.items())
    return SearchSpec(
        source=src, techniques=spaces, objectives=tuple(objectives), budgets=budgets,
        sampler=config_fields.get(src, "search", section, "sampler", str, "nsga2", choices=SAMPLERS),
        seed=config_fields.get(src, "search", section, "seed", int, 0, minimum=0),
        population=config_fields.get(src, "search", section, "population", int, 8, minimum=2))


def _base_layers(manifest) -> list:
    from ..compress import onnx_graph as g

    try:
        return [layer.name for layer in g.weight_layers(g.load(manifest.base))]
    except Exception as exc:
        raise ConfigError(str(manifest.source), "base", "a readable ONNX base model for per-layer choices",
                          str(manifest.base), str(exc)) from None


def _technique_space(src: str, name: str, params, layers: list) -> TechniqueSpace:
    from ..compress import techniques

    known = techniques()
    where = f"search.techniques.{name}"
    if name not in known:
        raise ConfigError(src, where, "one of " + ", ".join(sorted(known)), name)
    params = {} if params is None else params
    config_fields.check_keys(src, where, params, known[name].params)
    fixed, searched = {}, []
    for param, value in params.items():
        if isinstance(value, dict) and value and set(value) <= set(RANGE_KEYS):
            searched.append(_searched(src, f"{where}.{param}", name, param, value, layers))
        else:
            fixed[param] = value
    return TechniqueSpace(technique=name, fixed=fixed, searched=tuple(searched))


def _searched(src: str, where: str, technique: str, param: str, spec: dict, layers: list) -> SearchedParam:
    per_layer = config_fields.get(src, where, spec, "per_layer", bool, False)
    chosen_layers = config_fields.get_list(src, where, spec, "layers", str, default=layers if per_layer else ())
    if chosen_layers and not per_layer:
        raise ConfigError(src, f"{where}.layers", "per_layer: true beside a list of layers", chosen_layers)
    for i, layer in enumerate(chosen_layers):
        if layer not in layers:
            raise ConfigError(src, f"{where}.layers[{i}]", "a weight layer of the base model ("
                              + ", ".join(layers) + ")", layer)
    if "choices" in spec:
        if any(k in spec for k in ("low", "high", "step", "log")):
            raise ConfigError(src, where, "either choices or low/high, not both", sorted(spec))
        choices = config_fields.get(src, where, spec, "choices", list)
        if not choices or not all(isinstance(c, (int, float, str, bool)) for c in choices):
            raise ConfigError(src, f"{where}.choices", "a non-empty list of numbers, strings or booleans", choices)
        make = lambda name: Dimension(name=name, choices=tuple(choices))   # noqa: E731
    else:
        low = config_fields.get(src, where, spec, "low", (int, float), required=True)
        high = config_fields.get(src, where, spec, "high", (int, float), required=True)
        step = config_fields.get(src, where, spec, "step", (int, float), None)
        log = config_fields.get(src, where, spec, "log", bool, False)
        if high < low:
            raise ConfigError(src, f"{where}.high", f"a number >= low ({low})", high)
        if step is not None and step <= 0:
            raise ConfigError(src, f"{where}.step", "a positive number", step)
        if log and (low <= 0 or step is not None):
            raise ConfigError(src, f"{where}.log", "log only with low > 0 and no step", log)
        integer = all(isinstance(v, int) for v in (low, high, step if step is not None else 1))
        make = lambda name: Dimension(name=name, low=low, high=high, step=step, log=log,   # noqa: E731
                                      integer=integer)
    if per_layer:
        return SearchedParam(param, tuple(chosen_layers),
                             tuple(make(f"{technique}.{param}[{layer}]") for layer in chosen_layers))
    return SearchedParam(param, (), (make(f"{technique}.{param}"),))


def describe(technique: str, params: dict) -> str:
    """A configuration as a person reads it: 'fixed-point: activation_bits 8; layer_bits
    /fc1/Gemm 4, /fc2/Gemm 8'."""
    parts = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, dict):
            parts.append(f"{key} " + ", ".join(f"{layer} {_short(v)}" for layer, v in value.items()))
        else:
            parts.append(f"{key} {_short(value)}")
    return f"{technique}: " + "; ".join(parts) if parts else technique


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
