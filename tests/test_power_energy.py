"""Energy arithmetic against analytic signals with known energy (no device, no I/O)."""
import math

import numpy as np
import pytest

from harness.power.base import PowerTrace
from harness.power.energy import (counter_delta, counter_energy, event_times, event_window, idle_power,
                                  summarize, trapezoid_energy)


def sampled(fn, t0, t1, rate, source="test"):
    t = np.arange(t0, t1 + 1e-12, 1.0 / rate)
    return PowerTrace(source=source, t=t.tolist(), watts=[fn(x) for x in t], nominal_rate_hz=rate)


def test_constant_power_exact_over_an_unaligned_window():
    tr = sampled(lambda t: 5.0, 0.0, 10.0, 10)
    e, cov, gaps = trapezoid_energy(tr.t, tr.watts, 1.234, 7.891)
    assert e == pytest.approx(5.0 * (7.891 - 1.234))
    assert cov == pytest.approx(7.891 - 1.234) and gaps == []


def test_ramp_is_integrated_exactly_with_edge_interpolation():
    # P(t) = 2 + 3t: energy over [a, b] = 2(b-a) + 1.5(b^2-a^2)
    tr = sampled(lambda t: 2 + 3 * t, 0.0, 10.0, 7)
    a, b = 0.33, 9.01
    e, _, _ = trapezoid_energy(tr.t, tr.watts, a, b)
    assert e == pytest.approx(2 * (b - a) + 1.5 * (b * b - a * a), rel=1e-12)


def test_step_error_is_within_one_sample_of_the_jump():
    rate, step_at = 10, 4.05  # the step falls between two samples
    tr = sampled(lambda t: 1.0 if t < step_at else 6.0, 0.0, 10.0, rate)
    e, _, _ = trapezoid_energy(tr.t, tr.watts, 1.0, 9.0)
    exact = 1.0 * (step_at - 1.0) + 6.0 * (9.0 - step_at)
    assert abs(e - exact) <= 5.0 / rate / 2 + 1e-12


def test_step_with_coincident_samples_is_exact():
    t = [0, 1, 2, 2, 3, 4]
    p = [1, 1, 1, 4, 4, 4]
    e, _, _ = trapezoid_energy(t, p, 0.5, 3.5)
    assert e == pytest.approx(1.5 * 1 + 1.5 * 4)


def test_gap_is_recorded_and_not_filled():
    t = [0, 1, 2, 3, 8, 9, 10]  # nothing between 3 and 8
    p = [2.0] * len(t)
    e, cov, gaps = trapezoid_energy(t, p, 0, 10, max_gap_s=3.0)
    assert gaps == [(3.0, 8.0)]
    assert cov == pytest.approx(5.0) and e == pytest.approx(10.0)


def test_meter_that_stops_mid_window_records_the_gap():
    tr = sampled(lambda t: 3.0, 0.0, 4.0, 10)  # stops at t=4, window runs to 10
    out = summarize(tr, 1.0, 10.0, inferences=100)
    assert out["coverage"] == pytest.approx(3.0 / 9.0, abs=0.02)
    assert out["energy_per_inference_j"] is None  # not invented
    assert out["energy_j"] == pytest.approx(3.0 * 3.0, rel=0.05)
    assert out["avg_power_w"] == pytest.approx(3.0)
    assert out["gaps"] and out["gaps"][-1][1] == pytest.approx(10.0)
    assert any("covered" in n for n in out["notes"])


def test_nan_samples_are_missing_samples():
    t = list(range(11))
    p = [1.0] * 11
    p[4] = p[5] = p[6] = math.nan
    e, cov, gaps = trapezoid_energy(t, p, 0, 10, max_gap_s=3.0)
    assert gaps == [(3.0, 7.0)] and e == pytest.approx(6.0)


def test_edge_hold_is_at_most_one_period():
    e, cov, gaps = trapezoid_energy([1.05, 2.0], [1.0, 1.0], 1.0, 2.0, hold_s=0.1)
    assert gaps == [] and e == pytest.approx(1.0)
    e, cov, gaps = trapezoid_energy([1.5, 2.0], [1.0, 1.0], 1.0, 2.0, hold_s=0.1)
    assert gaps == [(1.0, 1.5)] and e == pytest.approx(0.5)


def test_counter_wraps_are_counted():
    wrap = 1000.0
    assert counter_delta(980, 20, wrap) == 40
    with pytest.raises(ValueError):
        counter_delta(980, 20, None)


def test_the_mlperf_window_is_between_the_last_two_falling_edges():
    events = [{"t": 1.0, "edge": "fal"}, {"t": 1.5, "edge": "ris"}, {"t": 2.0, "edge": "fal"},
              {"t": 3.0, "edge": "fal"}, {"t": 3.5, "edge": "ris"}]
    trace = PowerTrace(source="test", t=[], watts=[], extra={"events": events})
    assert event_times(trace) == [1.0, 2.0, 3.0] and event_times(trace, "ris") == [1.5, 3.5]
    assert event_window(trace) == (2.0, 3.0)
    one = PowerTrace(source="test", t=[], watts=[], extra={"events": events[:2]})
    assert event_window(one) is None and event_window(PowerTrace(source="test", t=[], watts=[])) is None


def test_counter_energy_interpolates_at_the_edges():
    t = np.arange(0, 11, 1.0)
    j = 4.0 * t  # 4 W
    e, cov, gaps, brackets = counter_energy(t, j, 2.5, 7.25)
    assert e == pytest.approx(4.0 * 4.75) and gaps == [] and brackets == (1.0, 1.0)


def test_counter_summary_and_idle_subtraction():
    t = np.arange(0, 21, 0.1)
    run = PowerTrace(source="c", method="counter", t=t.tolist(), joules=(7.0 * t).tolist())
    idle = PowerTrace(source="c", method="counter", t=t.tolist(), joules=(2.0 * t).tolist())
    out = summarize(run, 3.05, 13.05, inferences=1000, idle_trace=idle)  # edges between polls
    assert out["method"] == "counter"
    assert out["energy_j"] == pytest.approx(70.0)
    assert out["energy_per_inference_j"] == pytest.approx(0.07)
    assert out["idle_power_w"] == pytest.approx(2.0)
    assert out["net_energy_per_inference_j"] == pytest.approx(0.05)
    assert out["coverage"] == pytest.approx(1.0)
    assert out["uncertainty"] == pytest.approx(0.1 / 10.0)


def test_summary_of_a_sampled_trace_with_idle_and_rails():
    rate = 50
    t = np.arange(0, 12, 1 / rate)
    tr = PowerTrace(source="s", t=t.tolist(), watts=[4.0] * len(t), nominal_rate_hz=rate,
                    rails={"CPU": [1.0] * len(t), "GPU": [3.0] * len(t)})
    idle = sampled(lambda x: 1.5, 0, 3, rate)
    out = summarize(tr, 1.0, 11.0, 500, idle)
    assert out["avg_power_w"] == pytest.approx(4.0)
    assert out["energy_per_inference_j"] == pytest.approx(40.0 / 500)
    assert out["net_energy_per_inference_j"] == pytest.approx(25.0 / 500)
    assert out["n_samples"] in (500, 501) and out["enough_samples"]
    assert out["sample_rate_hz"] == pytest.approx(rate, rel=0.01)
    assert out["rails"]["GPU"]["energy_j"] == pytest.approx(30.0)
    assert out["uncertainty"] == pytest.approx((1 / rate) / 10.0)


def test_too_few_samples_are_flagged():
    tr = sampled(lambda x: 1.0, 0, 10, 1)
    out = summarize(tr, 2.0, 5.0, 10)
    assert not out["enough_samples"]
    assert any("lengthen" in n for n in out["notes"])


def test_clock_offset_moves_the_window():
    tr = sampled(lambda t: 1.0 if t < 5 else 3.0, 0, 10, 100)
    out = summarize(tr, 106.0, 108.0, 1, clock_offset_s=100.0)  # board clock is 100 s ahead
    assert out["avg_power_w"] == pytest.approx(3.0)


def test_empty_idle_trace_gives_no_net_energy():
    tr = sampled(lambda t: 1.0, 0, 10, 10)
    out = summarize(tr, 1, 9, 10, PowerTrace(source="x"))
    assert out["net_energy_per_inference_j"] is None and out["idle_power_w"] is None
    assert idle_power(None) is None
