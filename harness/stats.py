"""Pure arithmetic on latency samples: no pytest, no I/O, no device.

Percentiles use linear interpolation between order statistics (numpy's default), the
definition pytest-benchmark and onnxruntime_perf_test use; MLPerf LoadGen's p50..p99.9
set is reported.

A measurement is taken in rounds (docs/measurement.md): the samples of one round are one
contiguous window and are NOT independent of the machine's state in that window, so every
interval here includes the between-round variance: a t interval over the rounds' log
statistics (google/benchmark's aggregates over repetitions), widened to the within-window
bootstrap interval where that is wider.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-inference latencies, all times in milliseconds."""

    n: int
    min_ms: float
    max_ms: float
    mean_ms: float
    stddev_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    q1_ms: float
    q3_ms: float
    iqr_ms: float
    outliers_low: int
    outliers_high: int
    median_ci_low_ms: float
    median_ci_high_ms: float
    throughput_ips: float
    # Per round (a round is one runner process's timed window; see split_rounds). Old
    # stores hold none: a single round is then assumed.
    rounds_p50_ms: tuple = field(default_factory=tuple)
    rounds_p90_ms: tuple = field(default_factory=tuple)
    rounds_p99_ms: tuple = field(default_factory=tuple)
    rounds_mean_ms: tuple = field(default_factory=tuple)

    @property
    def rounds(self) -> int:
        return max(1, len(self.rounds_p50_ms))

    def round_values(self, statistic: str) -> tuple:
        """Per-round values of p50, p90, p99 or mean (ms); the pooled value if no rounds."""
        values = getattr(self, f"rounds_{statistic}_ms", ())
        return tuple(values) if values else (getattr(self, f"{statistic}_ms"),)

    def robust(self, statistic: str) -> float:
        """The statistic as the median over rounds: one disturbed round cannot move it (used
        by budgets; the pooled value stays the headline)."""
        return float(np.median(self.round_values(statistic)))

    @property
    def median_ms(self) -> float:
        return self.p50_ms

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyStats":
        d = dict(d)
        for key in ("rounds_p50_ms", "rounds_p90_ms", "rounds_p99_ms", "rounds_mean_ms"):
            d[key] = tuple(d.get(key) or ())
        return cls(**d)


# Fewest samples for a percentile to be an order statistic of the data rather than an
# interpolation towards the maximum (a p99 from 5 MCU windows is the maximum).
PERCENTILE_MIN_SAMPLES = {"p50": 1, "p90": 10, "p95": 20, "p99": 100, "p999": 1000}


def supported(statistic: str, n: int) -> bool:
    return n >= PERCENTILE_MIN_SAMPLES.get(statistic, 1)


def split_rounds(samples, round_sizes: Optional[Sequence[int]]) -> list:
    """The samples of each round; one round when sizes are not known."""
    x = np.asarray(samples, dtype=np.float64)
    if not round_sizes:
        return [x]
    if sum(round_sizes) != x.size or any(int(k) < 1 for k in round_sizes):
        raise ValueError(f"round sizes {list(round_sizes)} do not split {x.size} samples")
    return np.split(x, np.cumsum(round_sizes)[:-1])


def t_quantile(confidence: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, df))


def log_interval(values, confidence: float = 0.95) -> Optional[tuple]:
    """(geometric mean, low, high) of positive per-round values: a t interval on their logs.
    None with fewer than two rounds (the between-round variance is then unknown)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or np.any(v <= 0) or not np.all(np.isfinite(v)):
        return None
    logs = np.log(v)
    centre, sd = float(logs.mean()), float(logs.std(ddof=1))
    half = t_quantile(confidence, v.size - 1) * sd / math.sqrt(v.size)
    return math.exp(centre), math.exp(centre - half), math.exp(centre + half)


def tukey_fences(q1: float, q3: float, k: float = 1.5) -> tuple[float, float]:
    iqr = q3 - q1
    return q1 - k * iqr, q3 + k * iqr


def bootstrap_median_ci(samples, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the median, computed exactly.

    A resample of size n drawn from the sample has its (lower) median at or below the k-th
    smallest value exactly when at least m = ceil(n/2) of its draws are at or below it, a
    Binomial(n, k/n) event. The bootstrap distribution of the median is therefore known in
    closed form (the exact bootstrap of the median) and its quantiles are order statistics:
    the interval Monte Carlo resampling converges to, in O(n log n) instead of
    resamples x n random draws (seconds for the 10^5-sample runs of a fast model).
    """
    from scipy.stats import binom

    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = x.size
    if n == 0:
        raise ValueError("no samples")
    m = (n + 1) // 2
    k = np.arange(1, n + 1)
    cdf = binom.sf(m - 1, n, k / n)  # P(resampled median <= x_(k)), increasing in k
    alpha = (1.0 - confidence) / 2.0
    low = int(np.searchsorted(cdf, alpha))
    high = int(np.searchsorted(cdf, 1.0 - alpha))
    return float(x[min(low, n - 1)]), float(x[min(high, n - 1)])


def summarize(latencies_ns, round_sizes: Optional[Sequence[int]] = None,
              confidence: float = 0.95) -> LatencyStats:
    """Statistics of per-iteration latencies given in nanoseconds, taken in rounds of
    `round_sizes` samples (None: one round)."""
    ns = np.asarray(latencies_ns, dtype=np.float64)
    if ns.size == 0:
        raise ValueError("cannot summarize an empty list of latencies")
    if not np.all(np.isfinite(ns)) or np.any(ns < 0):
        raise ValueError("latencies must be finite and non-negative")
    ms = ns / 1e6
    rounds = [r / 1e6 for r in split_rounds(ns, round_sizes)] if round_sizes else []
    pcts = np.percentile(ms, [25.0, 75.0] + list(PERCENTILES.values()))
    q1, q3 = float(pcts[0]), float(pcts[1])
    p = dict(zip(PERCENTILES, (float(v) for v in pcts[2:])))
    low_fence, high_fence = tukey_fences(q1, q3)
    ci_low, ci_high = bootstrap_median_ci(ms, confidence)
    rounds_p50 = tuple(float(np.median(r)) for r in rounds)
    between = log_interval(rounds_p50, confidence)
    if between is not None:
        # The pooled median's interval, as wide as the round medians' spread says: the
        # between-round factor applied around the headline, or the within-window
        # interval where that is wider.
        centre, low, high = between
        ci_low = min(ci_low, p["p50"] * low / centre)
        ci_high = max(ci_high, p["p50"] * high / centre)
    mean = float(ms.mean())
    return LatencyStats(
        n=int(ms.size),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        mean_ms=mean,
        stddev_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        p50_ms=p["p50"], p90_ms=p["p90"], p95_ms=p["p95"], p99_ms=p["p99"], p999_ms=p["p999"],
        q1_ms=q1, q3_ms=q3, iqr_ms=q3 - q1,
        outliers_low=int(np.sum(ms < low_fence)),
        outliers_high=int(np.sum(ms > high_fence)),
        median_ci_low_ms=ci_low, median_ci_high_ms=ci_high,
        # Sequential single-stream inference: throughput is the inverse of the mean latency.
        throughput_ips=1000.0 / mean if mean > 0 else float("inf"),
        rounds_p50_ms=rounds_p50,
        rounds_p90_ms=tuple(float(np.percentile(r, 90.0)) for r in rounds),
        rounds_p99_ms=tuple(float(np.percentile(r, 99.0)) for r in rounds),
        rounds_mean_ms=tuple(float(r.mean()) for r in rounds),
    )
