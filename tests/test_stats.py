"""stats.py against distributions whose answers are known."""
import numpy as np
import pytest

from harness.stats import bootstrap_median_ci, summarize, tukey_fences


def test_uniform_integers_exact_percentiles():
    # 1..100 ms: linear-interpolation percentiles are known in closed form.
    s = summarize(np.arange(1, 101) * 1_000_000)
    assert s.n == 100 and s.min_ms == 1 and s.max_ms == 100
    assert s.mean_ms == pytest.approx(50.5)
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.p999_ms == pytest.approx(99.901)
    assert s.q1_ms == pytest.approx(25.75) and s.q3_ms == pytest.approx(75.25)
    assert s.iqr_ms == pytest.approx(49.5)
    assert s.stddev_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.outliers_low == s.outliers_high == 0
    assert s.throughput_ips == pytest.approx(1000 / 50.5)


def test_normal_distribution_percentiles_and_ci():
    rng = np.random.default_rng(7)
    ms = rng.normal(10.0, 1.0, 200_000)
    s = summarize(ms * 1e6)
    assert s.p50_ms == pytest.approx(10.0, abs=0.01)
    assert s.p90_ms == pytest.approx(10.0 + 1.2816, abs=0.02)
    assert s.p99_ms == pytest.approx(10.0 + 2.3263, abs=0.03)
    assert s.stddev_ms == pytest.approx(1.0, abs=0.01)
    assert s.median_ci_low_ms < 10.0 < s.median_ci_high_ms
    assert s.median_ci_high_ms - s.median_ci_low_ms < 0.02
    # Tukey fences of a normal: ~0.7% beyond 1.5 IQR, split evenly.
    assert 0.004 < (s.outliers_low + s.outliers_high) / s.n < 0.01


def test_exponential_median_and_tail():
    rng = np.random.default_rng(3)
    ms = rng.exponential(2.0, 100_000)
    s = summarize(ms * 1e6)
    assert s.p50_ms == pytest.approx(2.0 * np.log(2), rel=0.02)
    assert s.p99_ms == pytest.approx(2.0 * np.log(100), rel=0.03)
    assert s.outliers_high > 0 and s.outliers_low == 0


def test_outliers_counted_with_tukey_fences():
    ms = np.array([10.0] * 50 + [11.0] * 50 + [100.0, 0.01])
    s = summarize(ms * 1e6)
    low, high = tukey_fences(s.q1_ms, s.q3_ms)
    assert (low, high) == (pytest.approx(8.5), pytest.approx(12.5))
    assert s.outliers_high == 1 and s.outliers_low == 1


def test_bootstrap_ci_covers_true_median_most_of_the_time():
    rng = np.random.default_rng(11)
    hits = 0
    for trial in range(40):
        sample = rng.normal(5.0, 1.0, 301)
        low, high = bootstrap_median_ci(sample)
        hits += low <= 5.0 <= high
    assert hits >= 34  # nominal 95%: 38/40 expected, allow sampling noise


def test_single_sample_and_bad_input():
    s = summarize([5_000_000])
    assert s.p50_ms == s.p99_ms == s.median_ci_low_ms == 5.0 and s.stddev_ms == 0
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1, -5])


def test_exact_bootstrap_matches_monte_carlo_resampling():
    sample = np.random.default_rng(5).lognormal(0.0, 0.5, 501)
    rng = np.random.default_rng(6)
    medians = np.median(sample[rng.integers(0, sample.size, size=(4000, sample.size))], axis=1)
    mc_low, mc_high = np.quantile(medians, [0.025, 0.975])
    low, high = bootstrap_median_ci(sample)
    order = np.sort(sample)
    rank = lambda v: int(np.searchsorted(order, v))
    # the same interval, to within a couple of order statistics of Monte Carlo noise
    assert abs(rank(low) - rank(mc_low)) <= 3 and abs(rank(high) - rank(mc_high)) <= 3
