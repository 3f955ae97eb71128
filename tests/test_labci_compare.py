"""Regression gates on synthetic samples with known shifts: noise passes, a real shift fails."""
import numpy as np
import pytest

from harness import compare
from harness.compare import GateError, compare_accuracy, compare_samples, parse_gate, parse_gates


def lognormal(n, median_ns, seed, sigma=0.15):
    rng = np.random.default_rng(seed)
    return median_ns * rng.lognormal(0.0, sigma, n)


@pytest.mark.parametrize("text,metric,threshold,unit", [
    ("p50:5%", "p50", 0.05, "%"), ("p99:5%", "p99", 0.05, "%"), ("mean:10%", "mean", 0.10, "%"),
    ("energy:10%", "energy", 0.10, "%"), ("memory:5%", "memory", 0.05, "%"),
    ("accuracy:0.5pt", "accuracy", 0.5, "pt"), (" P90 : 2.5 % ", "p90", 0.025, "%"),
])
def test_parse(text, metric, threshold, unit):
    gate = parse_gate(text)
    assert (gate.metric, gate.unit) == (metric, unit)
    assert gate.threshold == pytest.approx(threshold)


@pytest.mark.parametrize("text,words", [
    ("p50", "METRIC:THRESHOLD"), ("speed:5%", "unknown metric 'speed'"),
    ("accuracy:5%", "percentage points"), ("p50:5pt", "percentage"), ("p50:0%", "> 0"),
])
def test_parse_errors_name_expression_and_allowed(text, words):
    with pytest.raises(GateError) as info:
        parse_gate(text)
    assert repr(text) in str(info.value) and words in str(info.value)


def test_parse_gates_comma_list():
    assert [g.metric for g in parse_gates(["p50:5%,p99:10%", "memory:5%"])] == ["p50", "p99", "memory"]


@pytest.mark.parametrize("metric", ["p50", "mean", "p90"])
def test_noise_of_three_percent_passes(metric):
    gate = parse_gate(f"{metric}:5%")
    base = lognormal(20000, 1e6, seed=1)
    new = lognormal(20000, 1.03e6, seed=2)  # a real but small 3% wobble: significant, under 5%
    verdict = compare_samples(base, new, gate)
    assert 0.0 < verdict.change < 0.05
    assert not verdict.regression, verdict.explain()


@pytest.mark.parametrize("metric", ["p50", "mean", "p90", "p99"])
def test_ten_percent_slowdown_fails(metric):
    gate = parse_gate(f"{metric}:5%")
    verdict = compare_samples(lognormal(20000, 1e6, seed=3), lognormal(20000, 1.10e6, seed=4), gate)
    assert verdict.significant and verdict.regression, verdict.explain()
    assert verdict.ci[0] < verdict.change < verdict.ci[1]
    assert "REGRESSION" in verdict.explain()


def test_large_but_insignificant_change_does_not_fail():
    # 8 samples each with huge spread: a 10% difference of medians is not evidence
    gate = parse_gate("p50:5%")
    base = lognormal(8, 1e6, seed=5, sigma=0.6)
    new = base * 1.10
    verdict = compare_samples(base, new, gate)
    assert verdict.change == pytest.approx(0.10)
    assert not verdict.significant and not verdict.regression


def test_speedup_is_not_a_regression():
    verdict = compare_samples(lognormal(5000, 1e6, 6), lognormal(5000, 0.7e6, 7), parse_gate("p50:5%"))
    assert verdict.change < 0 and not verdict.regression


def test_tail_regression_seen_by_p99_not_p50():
    # a throttled board: most inferences unchanged, 3% of them stalled 50x
    base = lognormal(20000, 1e6, seed=8)
    new = lognormal(20000, 1e6, seed=9)
    new[::33] *= 50
    assert not compare_samples(base, new, parse_gate("p50:5%")).regression
    assert compare_samples(base, new, parse_gate("p99:5%")).regression
    assert compare_samples(base, new, parse_gate("mean:10%")).regression


def test_mann_whitney_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = lognormal(300, 1.0, 10), lognormal(250, 1.05, 11)
    ours = compare.mann_whitney_greater(a, b)
    theirs = scipy_stats.mannwhitneyu(a, b, alternative="greater", method="asymptotic").pvalue
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_accuracy_gate():
    gate = parse_gate("accuracy:0.5pt")
    assert not compare_accuracy(0.975, 360, 0.975, 360, gate).regression
    drop = compare_accuracy(0.975, 5000, 0.950, 5000, gate)
    assert drop.regression and drop.change == pytest.approx(2.5)
    small = compare_accuracy(0.975, 360, 0.969, 360, gate)  # 2 images of 360: noise
    assert not small.regression


def test_scalar_gate_threshold_only():
    v = compare.compare_scalar(100.0, 112.0, parse_gate("memory:10%"))
    assert v.regression and v.significant is None and "one value per run" in v.explain()
    assert not compare.compare_scalar(100.0, 104.0, parse_gate("memory:10%")).regression


def test_energy_gate_uses_the_meters_uncertainty():
    gate = parse_gate("energy:10%")
    base = {"energy_per_inference_j": 1e-3, "uncertainty": 0.02}
    assert compare.compare_energy(base, {"energy_per_inference_j": 1.2e-3, "uncertainty": 0.02}, gate).regression
    noisy = compare.compare_energy({"energy_per_inference_j": 1e-3, "uncertainty": 0.15},
                                   {"energy_per_inference_j": 1.2e-3, "uncertainty": 0.15}, gate)
    assert not noisy.regression and "within the meters' uncertainty" in noisy.explain()
    bare = compare.compare_energy({"energy_per_inference_j": 1e-3}, {"energy_per_inference_j": 1.2e-3}, gate)
    assert bare.regression and bare.significant is None
    assert "not compared" in compare.compare_energy(None, base, gate).explain()


# ------------------------------------------------------------------ rounds and history


def _run(medians, seed, run_id):
    from fake_measurements import measured_in_rounds

    return measured_in_rounds(medians, seed=seed, run_id=run_id, campaign=f"{run_id}:local:1", spread=0.02)


def test_rounds_decide_not_samples():
    # one round of the new run slowed by a neighbour: thousands of samples say "slower",
    # the rounds say "one round"
    base = _run([1.0, 1.01, 0.99], 1, "base")
    new = _run([1.0, 1.30, 1.0], 2, "new")
    gate = compare.parse_gate("mean:5%")
    samples_only = compare.compare_samples(base.samples_ns, new.samples_ns, gate)
    assert samples_only.regression                       # the first release's verdict
    verdict = compare.compare_measurement(base, new, gate)
    assert not verdict.regression and "Welch" in verdict.test


def test_an_unchanged_board_under_a_changed_load_is_held_to_its_history():
    # every round of tonight 15% slower (the lab machine is busier tonight); the key's
    # history shows nights varying that much
    gate = compare.parse_gate("p50:10%")
    base = _run([1.0, 1.0, 1.0], 1, "base")
    new = _run([1.15, 1.15, 1.15], 2, "new")
    within = compare.compare_measurement(base, new, gate)
    assert within.regression and "insufficient history" not in within.note   # no history asked
    noisy_nights = [1.0, 1.2, 0.95, 1.18, 1.0, 0.9, 1.1, 1.0]
    held = compare.compare_measurement(base, new, gate, history=noisy_nights)
    assert not held.regression and "night-to-night" in held.note and held.history_runs == 8


def test_a_real_slowdown_beyond_a_quiet_history_is_a_regression():
    gate = compare.parse_gate("p50:5%")
    base, new = _run([1.0, 1.0, 1.0], 1, "base"), _run([1.12, 1.12, 1.12], 2, "new")
    quiet_nights = [1.0, 1.01, 0.99, 1.0, 1.005]
    verdict = compare.compare_measurement(base, new, gate, history=quiet_nights)
    assert verdict.regression and verdict.history_limit < 0.05


def test_too_little_history_says_so():
    gate = compare.parse_gate("p50:5%")
    verdict = compare.compare_measurement(_run([1.0] * 3, 1, "b"), _run([1.2] * 3, 2, "n"), gate, history=[1.0, 1.0])
    assert verdict.regression and "insufficient history (2 earlier run(s), need 3)" in verdict.note


def test_history_limit_is_robust_to_one_wild_night():
    assert compare.history_limit([1.0, 1.01, 0.99, 3.0, 1.0, 1.0]) < 0.10
    assert compare.history_limit([1.0, 1.0]) is None
