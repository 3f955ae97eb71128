"""What a search optimises and what it must respect: objectives and budgets over the metrics.

Every value is in one canonical unit per metric (accuracy a fraction, latency ms, sizes
bytes, energy J per inference, memory kB), read from a Measurement (on the device) or,
for the metrics known before measuring, from the built Variant (host accuracy, sizes).

A budget is written as a person says it: ``p90 < 5 ms``, ``accuracy drop < 1 pt``,
``stored size <= 4 KB``, ``energy < 0.2 mJ``. It becomes an optuna constraint (<= 0 is
feasible); a budget on a metric known before measuring is checked before the device.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str               # "maximize" | "minimize"
    unit: str                    # canonical unit, for labels
    units: dict                  # unit a budget may use -> factor to the canonical unit
    default_unit: str
    before_device: bool          # known from the built variant, before measuring
    label: str


_TIME = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1000.0}
_BYTES = {"B": 1.0, "KB": 1024.0, "kB": 1024.0, "KiB": 1024.0, "MB": 1024.0 ** 2, "MiB": 1024.0 ** 2}
METRICS = {m.name: m for m in (
    Metric("accuracy", "maximize", "fraction", {"": 1.0, "%": 0.01, "pt": 0.01}, "", True, "top-1 accuracy"),
    Metric("p50", "minimize", "ms", _TIME, "ms", False, "median latency (ms)"),
    Metric("p90", "minimize", "ms", _TIME, "ms", False, "p90 latency (ms)"),
    Metric("stored_size", "minimize", "B", _BYTES, "B", True, "stored size (bytes)"),
    Metric("deployed_size", "minimize", "B", _BYTES, "B", True, "deployed file size (bytes)"),
    Metric("energy", "minimize", "J", {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6}, "J", False,
           "energy per inference (J)"),
    Metric("memory", "minimize", "kB", {"kB": 1.0, "KB": 1.0, "KiB": 1.0, "MB": 1024.0, "MiB": 1024.0,
                                        "B": 1 / 1024.0}, "kB", False, "peak memory (kB)"),
)}
ALIASES = {"top1": "accuracy", "acc": "accuracy", "p50_latency": "p50", "median": "p50", "latency": "p50",
           "p90_latency": "p90", "size": "stored_size", "stored": "stored_size", "deployed": "deployed_size",
           "file_size": "deployed_size", "energy_per_inference": "energy", "peak_memory": "memory",
           "peak_rss": "memory"}
_BUDGET = re.compile(r"^\s*(?P<metric>[A-Za-z][A-Za-z0-9 _-]*?)(?P<drop>\s+drop)?\s*(?P<op><=|>=|<|>)\s*"
                     r"(?P<number>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>[A-Za-zµ%]*)\s*$")


def metric_name(text: str) -> Optional[str]:
    key = re.sub(r"[\s-]+", "_", text.strip().lower())
    key = ALIASES.get(key, key)
    return key if key in METRICS else None


@dataclass(frozen=True)
class Objective:
    name: str

    @property
    def metric(self) -> Metric:
        return METRICS[self.name]

    @property
    def direction(self) -> str:
        return self.metric.direction


def parse_objective(source, where: str, text: str) -> Objective:
    name = metric_name(text)
    if name is None:
        raise ConfigError(source, where, "one of " + ", ".join(METRICS), text)
    return Objective(name)


@dataclass(frozen=True)
class Budget:
    text: str
    metric: str
    op: str
    limit: float                 # canonical unit; for a drop: a fraction (1 pt = 0.01)
    drop: bool = False           # accuracy drop against the base model's host accuracy

    @property
    def before_device(self) -> bool:
        return METRICS[self.metric].before_device

    def value(self, metric_value: float, reference_accuracy: Optional[float]) -> float:
        if not self.drop:
            return metric_value
        if reference_accuracy is None:
            raise ValueError(f"budget {self.text!r}: the base model has no accuracy to drop from "
                             f"(the manifest names no dataset)")
        return reference_accuracy - metric_value

    def violation(self, metric_value: float, reference_accuracy: Optional[float] = None) -> float:
        """<= 0 when met (optuna's convention), else how far off, in the canonical unit."""
        v = self.value(metric_value, reference_accuracy)
        over = v - self.limit if self.op in ("<", "<=") else self.limit - v
        if self.op in ("<", ">") and over == 0:
            return 1e-12                     # strict: the limit itself is not within the budget
        return over


def parse_budget(source, where: str, text: str) -> Budget:
    match = _BUDGET.match(text or "")
    expected = "a budget like 'p90 < 5 ms', 'accuracy drop < 1 pt' or 'stored size <= 4 KB'"
    if not match:
        raise ConfigError(source, where, expected, text)
    name = metric_name(match["metric"])
    if name is None:
        raise ConfigError(source, where, f"{expected}; metrics: " + ", ".join(METRICS), text)
    metric, drop = METRICS[name], bool(match["drop"])
    if drop and name != "accuracy":
        raise ConfigError(source, where, "'drop' only with accuracy ('accuracy drop < 1 pt')", text)
    unit = match["unit"] or ("pt" if drop else metric.default_unit)
    if unit not in metric.units:
        raise ConfigError(source, where, f"a unit for {name}: " + ", ".join(u or "(none)" for u in metric.units),
                          text)
    return Budget(text=text.strip(), metric=name, op=match["op"], limit=float(match["number"]) * metric.units[unit],
                  drop=drop)


def from_measurement(name: str, m) -> Optional[float]:
    """A metric of a Measurement, canonical unit; None when this measurement has none."""
    if name == "accuracy":
        value = m.accuracy if m.accuracy is not None else m.host_accuracy
    elif name == "p50":
        value = m.latency.p50_ms
    elif name == "p90":
        value = m.latency.p90_ms
    elif name == "stored_size":
        value = m.storage_bytes
    elif name == "deployed_size":
        value = m.size_bytes
    elif name == "energy":
        value = (m.energy or {}).get("energy_per_inference_j")
    elif name == "memory":
        value = m.memory.peak_rss_kb
        if value is None and m.memory.ram_bytes is not None:
            value = m.memory.ram_bytes / 1024.0      # an MCU: static RAM and measured stack
    else:
        raise KeyError(name)
    return _finite(value)


def from_variant(name: str, variant) -> Optional[float]:
    """A metric known before measuring, from the built variant; None otherwise."""
    if name == "accuracy":
        return _finite(variant.host_accuracy)
    if name == "stored_size":
        return _finite(variant.storage_bytes)
    if name == "deployed_size":
        return _finite(variant.size_bytes)
    return None


def _finite(value) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
