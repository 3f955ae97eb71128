"""Units and log-axis ticks for the report: one latency unit for the whole page, ticks at
1, 2 and 5 x 10^k (never plotly's "5 6 7 8 9" minor labels). Pure: numbers in, numbers out."""
from __future__ import annotations

import math
from typing import Iterable, Optional

# (name, factor from milliseconds, largest typical value the unit is chosen for)
TIME_UNITS = (("µs", 1e3, 0.1), ("ms", 1.0, 1000.0), ("s", 1e-3, math.inf))


def time_unit(values_ms: Iterable) -> tuple[str, float]:
    """(name, factor from ms) read best for the median of `values_ms`: desktop inferences
    take microseconds, MCU ones milliseconds to seconds."""
    finite = sorted(float(v) for v in values_ms if v is not None and math.isfinite(float(v)) and float(v) > 0)
    typical = finite[len(finite) // 2] if finite else 1.0
    for name, factor, below in TIME_UNITS:
        if typical < below:
            return name, factor
    return TIME_UNITS[-1][:2]


def log_ticks(values: Iterable, minimum: int = 3) -> Optional[dict]:
    """Axis settings (tickvals, ticktext, range in log10) for a log axis holding `values`:
    ticks at 1, 2, 5 x 10^k inside the data's range, widened to the neighbouring ticks until
    at least `minimum` show. None when there is nothing positive to plot."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if not finite:
        return None
    low, high = min(finite), max(finite)
    ladder = [m * 10.0 ** k for k in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 2)
              for m in (1, 2, 5)]
    below = max(t for t in ladder if t <= low * (1 + 1e-9))
    above = min(t for t in ladder if t >= high * (1 - 1e-9))
    ticks = [t for t in ladder if below <= t <= above]
    while len(ticks) < minimum:
        smaller = [t for t in ladder if t < ticks[0]]
        larger = [t for t in ladder if t > ticks[-1]]
        if not smaller and not larger:
            break
        # widen on the side closer to the data (in log distance), so the points stay central
        if larger and (not smaller or math.log10(larger[0] / high) <= math.log10(low / smaller[-1])):
            ticks.append(larger[0])
        else:
            ticks.insert(0, smaller[-1])
    if len(ticks) > 10:   # many decades: the powers of ten only, plus the ends
        ticks = [t for i, t in enumerate(ticks) if i in (0, len(ticks) - 1) or _mantissa(t) == 1]
    pad = 0.04 * max(math.log10(ticks[-1] / ticks[0]), 1e-9)
    return {"type": "log", "tickvals": ticks, "ticktext": [tick_text(t) for t in ticks],
            "range": [math.log10(ticks[0]) - pad, math.log10(ticks[-1]) + pad]}


def _mantissa(value: float) -> int:
    return round(value / 10.0 ** math.floor(math.log10(value) + 1e-9))


def tick_text(value: float) -> str:
    """1, 20, 500, 1k, 2k, 0.05 ... (no float noise: 0.30000000000000004)."""
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{float(f'{value:.3g}'):g}"


def format_time(value_ms: Optional[float], unit: str, factor: float) -> str:
    """A latency in the page's unit with three significant digits (never 0.0006 for two values)."""
    if value_ms is None or not math.isfinite(value_ms):
        return "–"
    value = value_ms * factor
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def format_bytes(n: Optional[float]) -> str:
    """Sizes in the unit that fits: 912 B, 11.7 KB, 3.4 MB (1024-based)."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    for unit, scale in (("MB", 1024 ** 2), ("KB", 1024)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}" if n / scale < 100 else f"{n / scale:.0f} {unit}"
    return f"{int(n)} B"
