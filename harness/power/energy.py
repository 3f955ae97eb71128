"""Energy from power traces: pure arithmetic on plain data, no I/O, no device.

Two ways to energy, chosen by the trace:

* ``counter``: the meter read a cumulative energy counter (RAPL, NVML total energy,
  an integrating monitor). The cumulative value is interpolated linearly at the window's
  edges and differenced; wrap-around is unwrapped with the counter's range.
* ``trapezoid``: timestamped power samples are integrated with the trapezoid rule over
  [t0, t1], interpolating linearly at the edges.

Gaps are never filled: two samples further apart than ``gap_factor`` nominal periods
bound a gap, which is recorded and contributes no energy; ``coverage`` is the fraction
of the window that is covered. Energy per inference is only given for a fully covered
window (a partial one would be an invention); the covered energy and power still are.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

GAP_FACTOR = 3.0  # a silence longer than this many nominal periods is a gap
MIN_SAMPLES = 20  # a window should hold at least this many samples (or counter polls)


# ---------------------------------------------------------------- event edges


def event_times(trace, edge: str = "fal") -> list:
    """Host times of the GPIO edges of ``edge`` kind a monitor recorded in ``extra.events``
    (LPM01A: `event 7 fal` lines; Joulescope: its timestamp input)."""
    return [e["t"] for e in trace.extra.get("events", []) if e.get("edge") == edge]


def event_window(trace, edge: str = "fal"):
    """(t0, t1): host times of the last two edges of ``edge`` kind, the window MLPerf Tiny's
    energy mode measures between (the DUT toggles its timestamp pin at the start and the
    end of the inferences); None with fewer than two edges."""
    times = event_times(trace, edge)
    return (times[-2], times[-1]) if len(times) >= 2 else None


# ---------------------------------------------------------------- counters


def counter_delta(previous: float, current: float, wrap: float | None) -> float:
    """current - previous for a counter that wraps to 0 after ``wrap`` (None: never wraps).

    A backwards step of a counter that does not wrap is a reset, not negative energy;
    it raises ValueError so the caller records it.
    """
    delta = current - previous
    if delta < 0:
        if not wrap:
            raise ValueError(f"counter went backwards ({previous} -> {current}) and has no wrap range")
        delta += wrap
    return delta


def counter_energy(t, joules, t0: float, t1: float):
    """Energy between t0 and t1 from cumulative joules read at times t.

    Returns (energy_j, covered_s, gaps, edge_brackets_s): the counter is interpolated at
    the edges it brackets; an edge outside the readings is clipped to the nearest reading
    and the uncovered piece is a gap. ``edge_brackets_s`` is the spacing of the readings
    around each edge, the basis of the uncertainty estimate.
    """
    t = np.asarray(t, dtype=float)
    e = np.asarray(joules, dtype=float)
    if t.size < 2 or t1 <= t0:
        return 0.0, 0.0, [(t0, t1)] if t1 > t0 else [], (math.inf, math.inf)
    a, b = max(t0, t[0]), min(t1, t[-1])
    gaps = []
    if a > t0:
        gaps.append((t0, min(a, t1)))
    if b < t1:
        gaps.append((max(b, t0), t1))
    if b <= a:
        return 0.0, 0.0, _merge(gaps), (math.inf, math.inf)
    energy = float(np.interp(b, t, e) - np.interp(a, t, e))
    return energy, b - a, _merge(gaps), (_bracket(t, a), _bracket(t, b))


def _bracket(t: np.ndarray, x: float) -> float:
    i = int(np.searchsorted(t, x, side="right"))
    if i == 0 or i >= t.size:
        return 0.0 if (i == 0 and t[0] == x) or (i >= t.size and t[-1] == x) else math.inf
    if t[i - 1] == x:
        return 0.0
    return float(t[i] - t[i - 1])


# ---------------------------------------------------------------- sampled power


def trapezoid_energy(t, watts, t0: float, t1: float, max_gap_s: float = math.inf, hold_s: float = 0.0):
    """Integrate power samples over [t0, t1]. Returns (energy_j, covered_s, gaps).

    Samples are joined linearly (the trapezoid rule), and the integral is clipped exactly
    at t0 and t1 with linearly interpolated values. A pair of samples further apart than
    ``max_gap_s`` is a gap: no energy. Before the first sample and after the last, the
    edge value is held for at most ``hold_s`` (about one sample period); beyond that the
    window is uncovered. NaN samples are missing samples.
    """
    t = np.asarray(t, dtype=float)
    p = np.asarray(watts, dtype=float)
    keep = ~np.isnan(p)
    t, p = t[keep], p[keep]
    order = np.argsort(t, kind="stable")
    t, p = t[order], p[order]
    if t1 <= t0:
        return 0.0, 0.0, []
    if t.size == 0:
        return 0.0, 0.0, [(t0, t1)]

    energy = covered = 0.0
    gaps = []
    # Head and tail: hold the edge sample briefly, otherwise uncovered.
    if t[0] > t0:
        head_end = min(t[0], t1)
        held = min(head_end - t0, hold_s) if head_end - t0 <= hold_s else 0.0
        if held:
            energy += p[0] * held
            covered += held
        else:
            gaps.append((t0, head_end))
    if t[-1] < t1:
        tail_start = max(t[-1], t0)
        if t1 - tail_start <= hold_s:
            energy += p[-1] * (t1 - tail_start)
            covered += t1 - tail_start
        else:
            gaps.append((tail_start, t1))

    # Segments overlapping the window (vectorised).
    if t.size >= 2:
        ta, tb, pa, pb = t[:-1], t[1:], p[:-1], p[1:]
        a = np.maximum(ta, t0)
        b = np.minimum(tb, t1)
        overlap = b > a
        dt = tb - ta
        is_gap = overlap & (dt > max_gap_s)
        ok = overlap & ~is_gap
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(dt > 0, (pb - pa) / np.where(dt > 0, dt, 1.0), 0.0)
        va = pa + slope * (a - ta)
        vb = pa + slope * (b - ta)
        energy += float(np.sum(((va + vb) / 2.0 * (b - a))[ok]))
        covered += float(np.sum((b - a)[ok]))
        gaps.extend(zip(a[is_gap].tolist(), b[is_gap].tolist()))
    return float(energy), float(covered), _merge(gaps)


def _merge(gaps):
    out = []
    for g0, g1 in sorted((float(a), float(b)) for a, b in gaps if b > a):
        if out and g0 <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], g1))
        else:
            out.append((g0, g1))
    return out


# ---------------------------------------------------------------- the summary


def _period(trace) -> float | None:
    rate = getattr(trace, "nominal_rate_hz", None)
    if rate:
        return 1.0 / rate
    t = np.asarray(trace.t, dtype=float)
    if t.size >= 2:
        d = np.diff(np.sort(t))
        d = d[d > 0]
        if d.size:
            return float(np.median(d))
    return None


@dataclass
class WindowEnergy:
    """One series (the total or a rail) integrated over the window."""
    energy_j: float
    covered_s: float
    gaps: list           # [(start, end)] silences longer than gap_factor periods
    n_samples: int       # samples (or counter polls) inside the window
    edge_s: float        # unresolved time at the window's edges (the uncertainty's basis)


def _window_energy(trace, t0, t1, gap_factor, series=None) -> WindowEnergy:
    t = np.asarray(trace.t, dtype=float)
    n_in = int(np.count_nonzero((t >= t0) & (t <= t1)))
    if trace.method == "counter":
        values = trace.joules if series is None else series
        e, cov, gaps, (ba, bb) = counter_energy(t, values, t0, t1)
        # The counter's own readings are exact; between them power is assumed constant.
        return WindowEnergy(e, cov, gaps, n_in, (ba + bb) / 2.0)
    values = trace.watts if series is None else series
    period = _period(trace) or math.inf
    e, cov, gaps = trapezoid_energy(t, values, t0, t1, max_gap_s=gap_factor * period,
                                    hold_s=period if math.isfinite(period) else 0.0)
    return WindowEnergy(e, cov, gaps, n_in, period if math.isfinite(period) else math.inf)


def idle_power(trace, gap_factor: float = GAP_FACTOR) -> float | None:
    """Average power of an idle trace over its own span (None if it holds nothing usable)."""
    if trace is None:
        return None
    t = np.asarray(trace.t, dtype=float)
    if t.size < 2:
        return None
    idle = _window_energy(trace, float(t.min()), float(t.max()), gap_factor)
    return idle.energy_j / idle.covered_s if idle.covered_s > 0 else None


@dataclass
class EnergyRecord:
    """The energy record of one measurement, stored (and shown) as to_dict() gives it."""
    source: str
    method: str                  # counter | trapezoid
    window_s: float
    avg_power_w: Optional[float]
    energy_j: float
    energy_per_inference_j: Optional[float]   # only for a fully covered window
    idle_power_w: Optional[float]
    net_energy_j: Optional[float]
    net_energy_per_inference_j: Optional[float]
    sample_rate_hz: Optional[float]
    nominal_rate_hz: Optional[float]
    sample_period_s: Optional[float]
    n_samples: int
    enough_samples: bool
    coverage: float
    gaps: list
    meter_gaps: list
    uncertainty: float           # relative; a stated estimate, not a bound
    uncertainty_j: Optional[float]
    uncertainty_basis: str
    inferences: int
    rails: dict
    bad_lines: int
    extra: dict
    notes: list

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def summarize(trace, window_start: float, window_end: float, inferences: int, idle_trace=None, *,
              gap_factor: float = GAP_FACTOR, min_samples: int = MIN_SAMPLES,
              clock_offset_s: float = 0.0) -> dict:
    """The energy record of one measurement, as a dict (EnergyRecord.to_dict()).

    ``window_start``/``window_end`` are the timed loop's wall-clock edges as the runner
    reported them; ``clock_offset_s`` (board clock minus host clock) moves them onto the
    meter's clock when the two differ. ``idle_trace`` is the same meter read just before,
    with the device idle; its average power is subtracted for the net figures.
    """
    t0 = float(window_start) - clock_offset_s
    t1 = float(window_end) - clock_offset_s
    window = max(t1 - t0, 0.0)
    notes = list(getattr(trace, "notes", []) or [])
    total = _window_energy(trace, t0, t1, gap_factor)
    energy, n_in = total.energy_j, total.n_samples
    coverage = min(total.covered_s / window, 1.0) if window > 0 else 0.0
    full = window > 0 and not total.gaps and coverage >= 1.0 - 1e-9
    per_inf = energy / inferences if full and inferences > 0 else None
    if not full:
        notes.append(f"window only {coverage:.1%} covered by the meter ({len(total.gaps)} gap(s)); "
                     "no energy per inference is given for a partly covered window")
    if n_in < min_samples:
        notes.append(f"only {n_in} samples in the window (at least {min_samples} wanted); "
                     "lengthen the run (min_window_s)")
    idle_w, net_energy, net_per_inf = _net(idle_trace, gap_factor, energy, per_inf, window, inferences, notes)
    rel, basis = _uncertainty(trace, total, window)
    return EnergyRecord(
        source=trace.source, method=trace.method, window_s=window,
        avg_power_w=energy / total.covered_s if total.covered_s > 0 else None, energy_j=energy,
        energy_per_inference_j=per_inf, idle_power_w=idle_w, net_energy_j=net_energy,
        net_energy_per_inference_j=net_per_inf, sample_rate_hz=_sample_rate(trace, n_in, window),
        nominal_rate_hz=getattr(trace, "nominal_rate_hz", None), sample_period_s=_period(trace),
        n_samples=n_in, enough_samples=n_in >= min_samples, coverage=coverage,
        gaps=[[a, b] for a, b in total.gaps], meter_gaps=_meter_gaps(trace, t0, t1), uncertainty=rel,
        uncertainty_j=rel * energy if math.isfinite(rel) else None, uncertainty_basis=basis,
        inferences=inferences, rails=_rails(trace, t0, t1, window, gap_factor),
        bad_lines=int(getattr(trace, "bad_lines", 0) or 0), extra=dict(getattr(trace, "extra", {}) or {}),
        notes=notes).to_dict()


def _meter_gaps(trace, t0, t1) -> list:
    # Gaps the meter itself reported (failed reads) are listed beside the derived ones;
    # energy is judged from the samples alone (a counter keeps counting through a failed
    # poll, and a long silence between samples is already a derived gap).
    return [[max(a, t0), min(b, t1)] for a, b in (getattr(trace, "gaps", []) or []) if min(b, t1) > max(a, t0)]


def _sample_rate(trace, n_in: int, window: float) -> Optional[float]:
    if trace.method == "counter":
        return n_in / window if window > 0 else None
    return (n_in - 1) / window if window > 0 and n_in > 1 else None


def _uncertainty(trace, total: WindowEnergy, window: float) -> tuple[float, str]:
    """A stated estimate, not a bound: the energy of the unresolved time at the edges (one
    sample period in all, or the counter poll spacing around each edge), plus the meter's
    own averaging window, relative to the window length; plus counter resolution. Power
    that changes faster than the sampling is not covered by it."""
    averaging = float(getattr(trace, "averaging_s", 0.0) or 0.0)
    rel = (total.edge_s + averaging) / window if window > 0 else math.inf
    resolution = float(getattr(trace, "resolution_j", 0.0) or 0.0)
    if total.energy_j > 0 and resolution:
        rel += 2 * resolution / total.energy_j
    basis = ("counter poll spacing at the window edges" if trace.method == "counter"
             else "one sample period at the window edges")
    if averaging:
        basis += f" + the meter's {averaging:g} s averaging"
    return rel, basis + " relative to the window length"


def _net(idle_trace, gap_factor, energy, per_inf, window, inferences, notes) -> tuple:
    """(idle power, net energy, net energy per inference): the idle draw taken off."""
    idle_w = idle_power(idle_trace, gap_factor)
    if idle_w is not None and per_inf is not None:
        net_energy = energy - idle_w * window
        return idle_w, net_energy, net_energy / inferences
    if idle_trace is not None and idle_w is None:
        notes.append("the idle trace held no usable samples; no net energy")
    return idle_w, None, None


def _rails(trace, t0, t1, window, gap_factor) -> dict:
    rails = {}
    for name, series in (getattr(trace, "rails", None) or {}).items():
        rail = _window_energy(trace, t0, t1, gap_factor, series)
        rails[name] = {"avg_power_w": rail.energy_j / rail.covered_s if rail.covered_s > 0 else None,
                       "energy_j": rail.energy_j,
                       "coverage": min(rail.covered_s / window, 1.0) if window > 0 else 0.0}
    return rails


def min_window_for_rate(rate_hz: float | None, samples: int = MIN_SAMPLES) -> float:
    """Seconds a window must last to hold ``samples`` samples at ``rate_hz``."""
    return samples / rate_hz if rate_hz else 0.0
