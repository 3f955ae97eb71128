"""The metrics table: one row per figure a gate, a table or a help text names.

Gates (`--compare-fail METRIC:THRESHOLD`), their help text, the store's history columns and
the report table's metric columns read this table instead of keeping their own lists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Metric:
    name: str                    # as written in --compare-fail
    unit: str                    # of the value `of` returns
    description: str
    of: Callable                 # Measurement -> value or None
    gate_unit: str               # "%" (relative change) or "pt" (percentage points)
    test: str                    # how a gate decides significance (docs/measurement.md)
    column: Optional[str]        # the store column holding it per measurement (history)
    percentile: Optional[float] = None   # latency: the percentile of the samples; None: the mean
    rounds: Optional[str] = None         # latency: the per-round statistic (LatencyStats.round_values)
    table_format: str = "{:.4f}"

    @property
    def latency(self) -> bool:
        return self.unit == "ms"


def _memory_kb(m):
    """kB: peak RSS on Linux boards, RAM (data + bss + stack) on an MCU."""
    if m.memory.peak_rss_kb is not None:
        return m.memory.peak_rss_kb
    return None if m.memory.ram_bytes is None else m.memory.ram_bytes / 1024.0


ROUNDS_TEST = "Welch t over rounds (log), history"
METRICS = (
    Metric("p50", "ms", "median latency", lambda m: m.latency.p50_ms, "%", ROUNDS_TEST, "p50_ms", 50.0, "p50"),
    Metric("p90", "ms", "90th percentile latency", lambda m: m.latency.p90_ms, "%", ROUNDS_TEST, "p90_ms",
           90.0, "p90"),
    Metric("p95", "ms", "95th percentile latency", lambda m: m.latency.p95_ms, "%", "bootstrap of the ratio",
           None, 95.0),
    Metric("p99", "ms", "99th percentile latency", lambda m: m.latency.p99_ms, "%", ROUNDS_TEST, "p99_ms",
           99.0, "p99"),
    Metric("mean", "ms", "mean latency (1/throughput)", lambda m: m.latency.mean_ms, "%", ROUNDS_TEST,
           "mean_ms", None, "mean"),
    Metric("energy", "J", "energy per inference", lambda m: (m.energy or {}).get("energy_per_inference_j"),
           "%", "the meters' uncertainty", "energy_per_inference_j", table_format="{:.6f}"),
    Metric("memory", "kB", "peak RSS (Linux) or RAM (MCU)", _memory_kb, "%", "threshold only",
           "peak_rss_kb", table_format="{:.0f}"),
    Metric("accuracy", "fraction", "top-1 accuracy", lambda m: m.accuracy, "pt", "two-proportion z test",
           "accuracy", table_format="{:.4f}"),
)
BY_NAME = {m.name: m for m in METRICS}


def get(name: str) -> Optional[Metric]:
    return BY_NAME.get(name)


def gate_help() -> str:
    """The --compare-fail help text, from the table."""
    return ", ".join(f"{m.name}:N{'%' if m.gate_unit == '%' else 'pt'}" for m in METRICS)


def allowed_text() -> str:
    pct = ", ".join(m.name for m in METRICS if m.gate_unit == "%")
    pts = ", ".join(m.name for m in METRICS if m.gate_unit == "pt")
    return f"{pct} (as N%) and {pts} (as Npt)"
