"""Validity verdicts from recorded /proc and /sys snapshots (the runner's format), and the
measurement document's contract."""
import pytest

from harness import document, machine
from harness.stats import summarize
from harness.validity import Thresholds
from fake_measurements import measured_in_rounds, verdict


def snapshot(t, busy, self_cpu, steal=0, freq=None, throttled=None, quota=None, nr_throttled=0, temp=None):
    """One `machine_snapshot()` as the runner writes it (2 CPUs, 100 ticks/s)."""
    return {
        "time_unix_s": t, "loadavg": [1.0, 1.0, 1.0], "cpus_online": "0-1", "cpu_count": 2, "clock_ticks": 100,
        "cpu_jiffies": {"busy": busy, "idle": 1000, "steal": steal}, "self_cpu_s": self_cpu,
        "cpufreq": {"cpu0": {"cur_khz": freq, "min_khz": 600000, "max_khz": 2400000, "governor": "ondemand"}}
        if freq else {},
        "thermal_c": {"thermal_zone0:cpu": temp} if temp is not None else {},
        "cgroup_cpu": {"version": "v1", "quota_cores": quota, "nr_throttled": nr_throttled, "throttled_s": 0.0}
        if quota else None,
        "rpi_throttled": throttled, "jetson_power_mode": None,
    }


def window(seconds=1.0, runner_cores=1.0, other_cores=0.0, steal_cores=0.0, **edges):
    before = snapshot(100.0, 5000, 1.0, **{k: v[0] for k, v in edges.items()})
    after = snapshot(100.0 + seconds, 5000 + int(100 * seconds * (runner_cores + other_cores)),
                     1.0 + seconds * runner_cores, steal=int(100 * seconds * steal_cores),
                     **{k: v[1] for k, v in edges.items()})
    return machine.window_state(before, after)


def test_window_state_reads_other_processes_and_steal():
    w = window(other_cores=1.5, steal_cores=0.2)
    assert w["other_cores"] == pytest.approx(1.5) and w["own_cores"] == pytest.approx(1.0)
    assert w["steal_cores"] == pytest.approx(0.2) and w["cpus_online"] == 2


def test_quiet_machine_is_valid():
    v = verdict([window()] * 3)
    assert v["verdict"] == "valid" and v["reasons"] == []


def test_one_busy_neighbour_on_the_other_core_is_no_contention():
    assert verdict([window(other_cores=1.0)] * 3)["verdict"] == "valid"


def test_two_busy_neighbours_make_it_invalid_naming_rounds_and_cores():
    v = verdict([window(), window(other_cores=1.6), window(other_cores=1.4)])
    assert v["verdict"] == "invalid"
    assert "rounds 2, 3" in v["reasons"][0] and "1.60 cores" in v["reasons"][0]


def test_a_runner_with_two_threads_has_no_core_to_spare():
    assert verdict([window(runner_cores=2.0, other_cores=0.6)] * 3, threads=2)["verdict"] == "invalid"


def test_hypervisor_steal_counts_as_contention():
    v = verdict([window(other_cores=0.9, steal_cores=0.5)] * 3)
    assert v["verdict"] == "invalid" and "stolen by the hypervisor" in v["reasons"][0]


def test_frequency_change_in_a_window_is_invalid():
    v = verdict([window(freq=(2400000, 1800000)), window(freq=(2400000, 2400000)), window()])
    assert v["verdict"] == "invalid" and "round 1" in v["reasons"][0] and "25%" in v["reasons"][0]


def test_raspberry_pi_throttle_bits():
    v = verdict([window(throttled=("0x0", "0x4"))] + [window()] * 2)
    assert v["verdict"] == "invalid" and "throttled" in v["reasons"][0]
    assert verdict([window(throttled=("0x50000", "0x50000"))] * 3)["verdict"] == "valid"  # past events only


def test_temperature_limit_only_when_set():
    hot = [window(temp=(85.0, 91.0))] * 3
    assert verdict(hot)["verdict"] == "valid"
    assert verdict(hot, thresholds=Thresholds(max_temp_c=85.0))["verdict"] == "invalid"


def test_round_spread_and_stopping_rule():
    assert "spread" in verdict([{}] * 3, rounds=(1.0, 2.5, 1.0))["reasons"][0]
    assert verdict([{}] * 3, rounds=(1.0, 1.8, 1.0))["verdict"] == "valid"   # within 100%
    # a sub-microsecond model's processes differ by tens of percent: not a disturbance
    assert verdict([{}] * 3, rounds=(0.0006, 0.0011, 0.0006))["verdict"] == "valid"
    v = verdict([{}] * 3, loops=[{"stop_reason": "max_iterations"}, {}, {}])
    assert v["verdict"] == "valid" and any("max_iterations" in n for n in v["notes"])


def test_percentiles_from_too_few_samples_are_noted_and_refused_by_require():
    m = measured_in_rounds([1.0] * 5, n=1)   # an MCU: five windows, one value each
    assert any("p99 from 5 samples" in n for n in m.validity["notes"])
    assert m.require("p50_ms") == pytest.approx(1.0, rel=0.1)
    with pytest.raises(AssertionError, match="p99 needs at least 100 samples"):
        m.require("p99_ms")


def test_require_refuses_an_invalid_measurement_with_its_reasons():
    m = measured_in_rounds([1.0, 1.0, 1.0], machine_rounds=[window(other_cores=1.9)] * 3)
    assert not m.valid
    with pytest.raises(AssertionError, match="invalid.*contention"):
        m.require("p99_ms")


def test_require_is_the_median_over_rounds():
    m = measured_in_rounds([1.0, 1.02, 5.0], n=400)   # one round hit by a hiccup
    m.validity = {"verdict": "valid", "reasons": []}  # (as under a YAML that allows the spread)
    assert m.require("p50_ms") == pytest.approx(1.02, rel=0.02)
    assert m.require("mean_ms") == pytest.approx(1.02, rel=0.02)
    assert m.latency.mean_ms > 2.0   # the pooled mean is moved by the one round


def test_stability_hints_name_what_moves_numbers():
    hints = machine.stability_hints(snapshot(0, 0, 0, freq=1200000, quota=0.25, throttled="0x4", temp=82.0))
    text = " ".join(hints)
    for words in ("governor ondemand", "600 and 2400 MHz", "quota 0.25", "throttled", "82 C"):
        assert words in text


# ------------------------------------------------------------------ the document


def doc(**changes):
    out = {"ok": True, "schema": 2, "latencies_ns": [1000, 1100], "timings_ms": {"load": 1.0},
           "memory": {"peak_rss_kb": 100, "hwm_kb": {"x": 1}}, "accuracy": {"top1": 0.9, "n": 10}}
    out.update(changes)
    return out


@pytest.mark.parametrize("changes,field", [
    ({"schema": 7}, "schema"),
    ({"latencies_ns": []}, "latencies_ns"),
    ({"latencies_ns": [1, -2]}, "latencies_ns[1]"),
    ({"latencies_ns": [1, float("nan")]}, "latencies_ns[1]"),
    ({"round_sizes": [1, 2]}, "round_sizes"),
    ({"timings_ms": {"load": "fast"}}, "timings_ms.load"),
    ({"accuracy": {"top1": 1.5}}, "accuracy.top1"),
    ({"memory": []}, "memory"),
    ({"machine": {"before": 3}}, "machine.before"),
    ({"ok": False}, "ok"),
])
def test_a_broken_document_is_refused_naming_the_field(changes, field):
    with pytest.raises(document.DocumentError, match=f"board-x: measurement document: {field.replace('[', '.').replace(']', '.')}"):
        document.validate(doc(**changes), "board-x")


def test_a_good_document_passes_both_schema_versions():
    assert document.validate(doc(), "b")["latencies_ns"] == [1000, 1100]
    assert document.validate(doc(schema=1, round_sizes=[1, 1]), "b")
