"""Pure arithmetic on latency samples: no pytest, no I/O, no device.

Percentiles use linear interpolation between order statistics (numpy's default), the
definition pytest-benchmark and onnxruntime_perf_test use; MLPerf LoadGen's p50..p99.9
set is reported.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

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

    @property
    def median_ms(self) -> float:
        return self.p50_ms

    def to_dict(self) -> dict:
        return asdict(self)


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


def summarize(latencies_ns) -> LatencyStats:
    """Statistics of per-iteration latencies given in nanoseconds."""
    ns = np.asarray(latencies_ns, dtype=np.float64)
    if ns.size == 0:
        raise ValueError("cannot summarize an empty list of latencies")
    if not np.all(np.isfinite(ns)) or np.any(ns < 0):
        raise ValueError("latencies must be finite and non-negative")
    ms = ns / 1e6
    pcts = np.percentile(ms, [25.0, 75.0] + list(PERCENTILES.values()))
    q1, q3 = float(pcts[0]), float(pcts[1])
    p = dict(zip(PERCENTILES, (float(v) for v in pcts[2:])))
    low_fence, high_fence = tukey_fences(q1, q3)
    ci_low, ci_high = bootstrap_median_ci(ms)
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
    )
