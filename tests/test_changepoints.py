"""Change points in a series of nightly figures: steps found where they are, noise and single odd
nights never marked (seeded synthetic nights, no timing)."""
import numpy as np
import pytest

from harness.changepoints import change_points


def nights(levels, noise=0.01, seed=0):
    """Nightly p50s in ms: runs of (count, level), multiplicative noise."""
    rng = np.random.default_rng(seed)
    series = np.concatenate([np.full(count, level, dtype=float) for count, level in levels])
    return series * np.exp(rng.normal(0.0, noise, series.size))


@pytest.mark.parametrize("seed", range(20))
def test_noise_alone_has_no_change_point(seed):
    assert change_points(nights([(365, 2.0)], noise=0.03, seed=seed)) == []


@pytest.mark.parametrize("seed", range(10))
def test_a_ten_percent_step_is_found_where_it_is(seed):
    found = change_points(nights([(200, 1.0), (165, 1.1)], noise=0.02, seed=seed))
    assert len(found) == 1 and abs(found[0] - 200) <= 2


def test_two_steps_both_ways():
    found = change_points(nights([(100, 5.0), (150, 4.0), (115, 6.0)], noise=0.02, seed=3))
    assert len(found) == 2 and abs(found[0] - 100) <= 2 and abs(found[1] - 250) <= 2


def test_one_odd_night_is_not_a_change():
    series = nights([(365, 1.0)], noise=0.01, seed=4)
    series[180] *= 3.0       # a night with another job on the board
    series[300] *= 0.5
    assert change_points(series) == []


def test_small_but_clear_steps_below_the_effect_are_not_marked():
    series = nights([(180, 1.0), (185, 1.01)], noise=0.001, seed=5)  # 1 %: clear, but below 2 %
    assert change_points(series) == []
    assert change_points(series, min_effect=0.005) != []


def test_short_and_degenerate_series():
    assert change_points([]) == [] and change_points([1.0] * 9) == []
    assert change_points([1.0] * 50) == []
    assert change_points([1.0] * 50 + [2.0] * 50) == [50]  # a perfectly steady step
    assert change_points([1.0, 0.0] * 20) == []             # not positive: nothing to say


def test_a_wild_night_does_not_hide_a_real_step():
    series = nights([(200, 1.0), (165, 1.1)], noise=0.02, seed=6)
    series[2] *= 20.0  # a wild early night (the board swapped): far larger than the step
    found = change_points(series)
    assert len(found) == 1 and abs(found[0] - 200) <= 2
