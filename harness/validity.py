"""A validity verdict on every measurement, MLPerf LoadGen style: VALID or INVALID, with reasons.

A measurement is invalid when something the harness did not control disturbed it enough to
mislead: other processes took cores the runner needed, a CPU changed frequency or the
firmware throttled during a window, the rounds disagree beyond a limit, the stopping rule
was not met. The thresholds come from the device YAML's `validity:` section (defaults
below); the machine figures from harness/machine.py. Pure: plain data in, verdict out.

Notes are facts that qualify a figure without invalidating the measurement (one round:
drift not measured; a percentile from too few samples). Budgets asked of such a figure
fail with the note (Measurement.require).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from . import config_fields
from .stats import PERCENTILE_MIN_SAMPLES, LatencyStats, supported

VALID, INVALID = "valid", "invalid"


@dataclass(frozen=True)
class Thresholds:
    # Cores other processes (and the hypervisor's steal) used beyond what the runner left
    # idle: on 2 cores with a 1-thread runner, one busy neighbour is no contention, two are.
    max_contention_cores: float = 0.25
    # (max - min) / median of the rounds' medians: beyond it the rounds disagree so much that
    # even the widened interval is a poor summary (separate processes of a sub-microsecond
    # model differ by 10-20% on a quiet machine: cache and page placement)
    max_round_spread: float = 1.0
    # ...unless the rounds differ by less than this in absolute time: below a few
    # microseconds, where the process's own placement moves a model's median, the spread
    # is the model's, not a disturbance (the interval still carries it)
    min_round_spread_ms: float = 0.002
    # Relative change of any core's frequency between the window's edges.
    max_freq_change: float = 0.10
    # Relative change of a GPU's SM or memory clock between the window's edges.
    max_gpu_clock_change: float = 0.10
    # Hottest thermal zone (or GPU) during a window (None: not checked).
    max_temp_c: Optional[float] = None
    # The smallest relative difference between variants that counts (the noise floor's
    # lower bound; a control pair can raise it: harness/decide.py).
    min_effect: float = 0.02
    # Re-measure an invalid measurement once before a budget test judges it.
    remeasure: bool = False

    @classmethod
    def parse(cls, source, mapping: Optional[dict]) -> "Thresholds":
        """The device YAML's `validity:` section; errors name the file and field."""
        mapping = mapping or {}
        names = [f.name for f in fields(cls)]
        config_fields.check_keys(source, "validity", mapping, names)
        values = {}
        for f in fields(cls):
            default = getattr(cls, f.name)
            if f.name == "remeasure":
                values[f.name] = config_fields.get(source, "validity", mapping, f.name, bool, default)
            else:
                values[f.name] = config_fields.get(source, "validity", mapping, f.name, float, default, minimum=0.0)
        return cls(**values)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def assess(latency: LatencyStats, windows: list, loops: list, thresholds: Thresholds = Thresholds(),
           threads: int = 1, emulated_time: bool = False) -> dict:
    """The verdict of one measurement from its rounds.

    windows: one harness.machine.window_state per round ({} where not read);
    loops:   one timed-loop record per round ({"stop_reason": ...}).
    threads: the cores the runner asked for (its runtime's intra-op threads);
    emulated_time: guest time of an instruction-counted emulator, which no host load moves.
    """
    reasons, notes = [], []
    for i, loop in enumerate(loops):
        if (loop or {}).get("stop_reason") == "max_iterations":
            # the YAML's own cap ended the window (LoadGen's max_query_count): fine, but said
            notes.append(f"round {i + 1}: the timed loop stopped at max_iterations before min_duration_s")
            break
    rounds = latency.round_values("p50")
    if len(rounds) >= 2:
        ordered = sorted(rounds)
        middle = ordered[len(ordered) // 2] if len(ordered) % 2 else 0.5 * (
            ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2])
        spread = (ordered[-1] - ordered[0]) / middle if middle > 0 else 0.0
        if spread > thresholds.max_round_spread and ordered[-1] - ordered[0] > thresholds.min_round_spread_ms:
            reasons.append(f"round medians spread {100 * spread:.0f}% of their median "
                           f"(limit {100 * thresholds.max_round_spread:.0f}%)")
    else:
        notes.append("one round: drift between rounds was not measured")
    if not emulated_time:
        reasons += window_reasons(windows, thresholds, threads)
        reasons += gpu_reasons(windows, thresholds)
    missing = sorted({(w or {}).get("gpu", {}).get("missing") for w in windows} - {None})
    notes += [f"GPU state not read: {m}" for m in missing]
    for stat in ("p99", "p999"):
        if not supported(stat, latency.n):
            notes.append(f"{stat} from {latency.n} samples (needs {PERCENTILE_MIN_SAMPLES[stat]})")
    return {"verdict": INVALID if reasons else VALID, "reasons": reasons, "notes": notes,
            "thresholds": thresholds.to_dict()}


def _rounds_text(found: dict) -> str:
    rounds = ", ".join(str(i) for i in found)
    return f"round{'s' if len(found) > 1 else ''} {rounds}"


def window_reasons(windows: list, t: Thresholds, threads: int = 1) -> list:
    """One reason per kind of disturbance, naming the rounds it hit and the worst value."""
    contention, freq, throttled, hot = {}, {}, {}, {}
    for index, w in enumerate(windows, start=1):
        w = w or {}
        if w.get("other_cores") is not None and w.get("cpus_online"):
            # What the runner left free for others: the cores beyond its threads (not
            # beyond what it got: a starved runner uses less, which is no room for more).
            free = max(0.0, w["cpus_online"] - max(float(threads), w.get("own_cores") or 0.0))
            excess = w["other_cores"] + (w.get("steal_cores") or 0.0) - free
            if excess > t.max_contention_cores:
                contention[index] = (excess, w["other_cores"], w.get("steal_cores") or 0.0, free)
        if (w.get("freq_change_max") or 0.0) > t.max_freq_change:
            freq[index] = w["freq_change_max"]
        if w.get("rpi_throttled"):
            throttled[index] = w["rpi_throttled"]
        if t.max_temp_c is not None and (w.get("temp_max_c") or 0.0) > t.max_temp_c:
            hot[index] = w["temp_max_c"]
    out = []
    if contention:
        excess, other, steal, free = max(contention.values())
        out.append(f"{_rounds_text(contention)}: other processes used up to {other:.2f} cores"
                   + (f" (+{steal:.2f} stolen by the hypervisor)" if steal >= 0.05 else "")
                   + f" with {free:.2f} left free by the runner: up to {excess:.2f} cores of contention "
                     f"(limit {t.max_contention_cores:.2f})")
    if freq:
        out.append(f"{_rounds_text(freq)}: a CPU's frequency changed up to {100 * max(freq.values()):.0f}% "
                   f"during the window (limit {100 * t.max_freq_change:.0f}%)")
    if throttled:
        flags = sorted({f for v in throttled.values() for f in v})
        out.append(f"{_rounds_text(throttled)}: the Raspberry Pi firmware reported {', '.join(flags)}")
    if hot:
        out.append(f"{_rounds_text(hot)}: up to {max(hot.values()):.0f} C (limit {t.max_temp_c:.0f} C)")
    return out


def gpu_reasons(windows: list, t: Thresholds) -> list:
    """A GPU that throttled (a throttle reason at an edge, or NVML's violation time grew
    between them), changed its clocks, or ran hotter than the limit during a window."""
    throttled, clocks, hot = {}, {}, {}
    for index, w in enumerate(windows, start=1):
        g = (w or {}).get("gpu") or {}
        flags = list(g.get("throttle") or [])
        flags += [f"{policy} policy held the clocks {seconds * 1e3:.1f} ms"
                  for policy, seconds in sorted((g.get("violation_s") or {}).items())]
        if flags:
            throttled[index] = flags
        for key, label in (("sm_clock_change", "SM"), ("mem_clock_change", "memory")):
            if (g.get(key) or 0.0) > t.max_gpu_clock_change:
                before, after = g[key.replace("_change", "_mhz")]
                clocks.setdefault(index, []).append(f"{label} {before} -> {after} MHz")
        if t.max_temp_c is not None and (g.get("temp_max_c") or 0.0) > t.max_temp_c:
            hot[index] = g["temp_max_c"]
    out = []
    if throttled:
        flags = sorted({f for v in throttled.values() for f in v})
        out.append(f"{_rounds_text(throttled)}: the GPU throttled during the window ({'; '.join(flags)})")
    if clocks:
        changes = sorted({c for v in clocks.values() for c in v})
        out.append(f"{_rounds_text(clocks)}: the GPU's clocks changed during the window ({'; '.join(changes)}; "
                   f"limit {100 * t.max_gpu_clock_change:.0f}%)")
    if hot:
        out.append(f"{_rounds_text(hot)}: the GPU reached {max(hot.values()):.0f} C (limit {t.max_temp_c:.0f} C)")
    return out


class InvalidMeasurement(AssertionError):
    """A budget asked a figure the measurement cannot vouch for; the message says why."""
