"""Rounds, paired ratios and ties on synthetic measurements whose truth is known.

Drift between rounds (load, frequency, a neighbour) multiplies every variant measured in
that round alike; the statistics must see it as noise, never as a difference."""
import numpy as np
import pytest

from harness import decide
from harness.stats import log_interval, summarize
from fake_measurements import measured_in_rounds


def drifting_pair(seed, true_ratio=1.0, rounds=3, drift=0.4, spread=0.03, sha_same=False, wobble=0.01):
    rng = np.random.default_rng(seed)
    machine = np.exp(rng.normal(0.0, drift, rounds))          # what each round's machine state does
    jitter = lambda: np.exp(rng.normal(0.0, wobble, rounds))   # the round-to-round wobble left over
    a = measured_in_rounds(list(1.0 * machine * jitter()), variant="a", seed=seed, spread=spread,
                           sha="a" * 64)
    b = measured_in_rounds(list(true_ratio * machine * jitter()), variant="b", seed=seed + 1000,
                           spread=spread, sha=("a" if sha_same else "b") * 64)
    return a, b


def test_the_median_interval_includes_the_drift_between_rounds():
    m = measured_in_rounds([1.0, 1.6, 0.8], n=2000)
    within_only = summarize(m.samples_ns)   # the first release: one window, samples as iid draws
    assert within_only.median_ci_high_ms - within_only.median_ci_low_ms < 0.05
    # with rounds the interval spans what the round medians say the median could be
    assert m.latency.median_ci_low_ms < 0.9 and m.latency.median_ci_high_ms > 1.3
    assert m.latency.median_ci_low_ms <= m.latency.p50_ms <= m.latency.median_ci_high_ms
    assert m.latency.rounds == 3 and len(m.latency.rounds_p50_ms) == 3


def test_identical_variants_under_drift_are_tied():
    # 200 synthetic A/A campaigns whose rounds drift by +-40%: at most 5% called different
    different = 0
    for seed in range(200):
        a, b = drifting_pair(seed)
        relation, _ = decide.latency_relation(a, b, floor=0.02)
        different += relation != "tied"
    assert different <= 10, different


def test_a_true_ten_percent_slowdown_under_drift_is_found_with_its_ratio():
    found, errors = 0, []
    for seed in range(200):
        a, b = drifting_pair(seed, true_ratio=1.10)
        relation, ratio = decide.latency_relation(a, b, floor=0.02)
        found += relation == "slower"
        errors.append(abs(ratio.estimate / 1.10 - 1))
    assert found >= 190, found
    assert np.median(errors) < 0.02


def test_unpaired_rounds_do_not_cancel_drift():
    # the same numbers from two different campaigns: drift no longer cancels, so the
    # interval is wide and the pair is tied (the paired test would have found 10%)
    a, b = drifting_pair(3, true_ratio=1.10)
    b.provenance["campaign"]["id"] = "another-campaign"
    ratio = decide.latency_ratio(a, b)
    assert not ratio.paired
    assert ratio.high / ratio.low > 1.5


def test_same_bytes_and_settings_are_never_different():
    a, b = drifting_pair(5, true_ratio=1.5, sha_same=True)   # a 50% "difference" from noise
    relation, ratio = decide.latency_relation(a, b, floor=0.02)
    assert ratio.identical and relation == "tied"
    b.settings = {"threads": 2}                               # other settings: another experiment
    assert decide.latency_relation(a, b, floor=0.02)[0] == "slower"


def test_a_difference_below_the_noise_floor_is_a_tie():
    a, b = drifting_pair(8, true_ratio=1.03, drift=0.0, spread=0.001, wobble=0.001)
    assert decide.latency_relation(a, b, floor=0.01)[0] == "slower"
    assert decide.latency_relation(a, b, floor=0.05)[0] == "tied"


def test_one_round_decides_nothing():
    a = measured_in_rounds([1.0], variant="a", sha="a" * 64)
    b = measured_in_rounds([2.0], variant="b", sha="b" * 64)
    relation, ratio = decide.latency_relation(a, b, floor=0.02)
    assert relation == "tied" and ratio.low is None
    assert "one round" in " ".join(a.validity["notes"])


def test_a_control_pair_raises_the_noise_floor():
    fp32 = measured_in_rounds([1.0, 1.0, 1.0], variant="fp32", sha="f" * 64, spread=0.001)
    control = measured_in_rounds([1.08, 1.08, 1.08], variant=decide.CONTROL_VARIANT, sha="f" * 64, spread=0.001)
    floors = decide.noise_floor([fp32, control], min_effect=0.02)
    assert floors["local"] == pytest.approx(0.08, abs=0.01)


def test_pareto_keeps_tied_points_and_drops_decided_losers():
    fast = measured_in_rounds([1.0, 1.2, 0.9], variant="fast", sha="1" * 64, accuracy=0.97, spread=0.001)
    twin = measured_in_rounds([1.001, 1.2, 0.9], variant="twin", sha="2" * 64, accuracy=0.97, spread=0.001)
    slow = measured_in_rounds([2.0, 2.4, 1.8], variant="slow", sha="3" * 64, accuracy=0.97, spread=0.001)
    front = decide.pareto_front([fast, twin, slow], floor=0.02)
    assert front == [True, True, False]
    # a plain Pareto on the point estimates drops one of the twins: noise picks the front
    from harness.report.pareto import pareto_mask
    assert pareto_mask([m.latency.p50_ms for m in (fast, twin, slow)], [0.97] * 3).count(True) == 1


def test_accuracy_one_sample_apart_is_a_tie():
    a = measured_in_rounds([1.0, 1.0, 1.0], variant="a", accuracy=351 / 360)
    b = measured_in_rounds([1.0, 1.0, 1.0], variant="b", accuracy=350 / 360)
    assert decide.accuracy_relation(a, b) == "tied"
    c = measured_in_rounds([1.0, 1.0, 1.0], variant="c", accuracy=0.50)
    assert decide.accuracy_relation(a, c) == "worse"


def test_log_interval_matches_a_t_interval():
    from scipy import stats

    values = [1.0, 1.2, 0.9, 1.1]
    centre, low, high = log_interval(values)
    logs = np.log(values)
    t_low, t_high = stats.t.interval(0.95, len(values) - 1, loc=logs.mean(), scale=stats.sem(logs))
    assert (np.log(low), np.log(high)) == pytest.approx((t_low, t_high))
    assert log_interval([1.0]) is None
