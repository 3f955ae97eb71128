"""The meter registry, open_meters, min_window_s and measure_with_meters' pairing."""
from types import SimpleNamespace

import pytest

from harness.power import (Meter, MeterError, PowerTrace, board_source, known_meters, measure_with_meters,
                           meter, min_window_s, open_meters)
from harness.power.base import Option
from power_helpers import VirtualClock, spec_with


@meter("test_const")
class ConstMeter(Meter):
    """A meter registered by a third party: a constant 2 W at 100 Hz, synthesised."""

    OPTIONS = {"watts": Option(float, 2.0, minimum=0.0)}
    nominal_rate_hz = 100.0
    log = []

    def start(self):
        self.t0 = self.clock.time()
        self.log.append("start")

    def stop(self):
        t1 = self.clock.time()
        n = int((t1 - self.t0) * 100) + 2
        self.log.append("stop")
        return PowerTrace(source=self.label, t=[self.t0 + i / 100 for i in range(n)],
                          watts=[self.options["watts"]] * n, nominal_rate_hz=100.0)


def test_registered_meter_is_known_and_opened_with_its_options():
    assert {"test_const", "tegrastats", "rapl", "nvml", "lpm01a", "serial_stream"} <= set(known_meters())
    (m,) = open_meters(spec_with([{"meter": "test_const", "watts": 3.0, "label": "bench PSU"}]), None)
    assert m.options["watts"] == 3.0 and m.label == "bench PSU"


def test_min_window_is_twenty_periods_of_the_slowest_meter():
    meters = open_meters(spec_with([{"meter": "test_const"}, {"meter": "tegrastats", "interval_ms": 500},
                                    {"meter": "rapl", "interval_ms": 100}]), None)
    assert min_window_s(meters) == pytest.approx(10.0)
    assert min_window_s([]) == 0.0


def test_on_board_meters_need_a_board_source():
    spec = spec_with([{"meter": "rapl"}])
    ssh_spec = SimpleNamespace(kind="ssh", source="devices/pi.yaml", power=spec.power)
    with pytest.raises(MeterError, match="meter_source"):
        open_meters(ssh_spec, SimpleNamespace(meter_source=lambda root: None))   # a kind without one
    sentinel = object()
    assert board_source(ssh_spec, SimpleNamespace(meter_source=lambda root: sentinel)) is sentinel


def test_measure_with_meters_pairs_start_and_stop_even_when_the_run_fails():
    ConstMeter.log = []
    meters = open_meters(spec_with([{"meter": "test_const"}]), None)

    def boom():
        raise RuntimeError("runner died")

    with pytest.raises(RuntimeError, match="runner died"):
        measure_with_meters(meters, boom, idle_s=0.01)
    assert ConstMeter.log == ["start", "stop", "start", "stop"]


def test_a_meter_that_fails_to_start_stops_the_ones_already_started(tmp_path):
    ConstMeter.log = []
    meters = open_meters(spec_with([{"meter": "test_const"},
                                    {"meter": "ina2xx", "root": str(tmp_path)}]), None)
    with pytest.raises(MeterError):
        measure_with_meters(meters, lambda: None, idle_s=0.01)
    assert ConstMeter.log == ["start", "stop"]


def test_measure_with_meters_summarizes_each_meter():
    clock = VirtualClock(meters=0)  # the meter synthesises its samples: nobody waits
    meters = open_meters(spec_with([{"meter": "test_const", "watts": 2.0}]), None, clock=clock)
    began = clock.time()

    def run():
        clock.advance(0.05)
        t0 = clock.time()
        clock.advance(0.3)
        return {"window": {"start_unix_s": t0, "end_unix_s": clock.time()}, "loop": {"iterations": 30}}

    raw, (e,) = measure_with_meters(meters, run, idle_s=0.2)
    assert raw["window"]["start_unix_s"] - began == pytest.approx(0.25, abs=1e-6)  # after the idle 0.2 s
    assert e["avg_power_w"] == pytest.approx(2.0) and e["net_energy_per_inference_j"] == pytest.approx(0.0)
    assert e["energy_per_inference_j"] == pytest.approx(2.0 * 0.3 / 30, rel=1e-5)


def test_defaults_survive_validation():
    (t, v) = open_meters(spec_with([{"meter": "tegrastats"}, {"meter": "vcgencmd"}]), None)
    assert t.argv() == ["tegrastats", "--interval", "100"]
    assert v.argv() == ["vcgencmd", "pmic_read_adc"]
    t.options["command"].append("x")  # a meter's options are its own
    (t2,) = open_meters(spec_with([{"meter": "tegrastats"}]), None)
    assert t2.argv() == ["tegrastats", "--interval", "100"]


def test_nvml_only_on_the_local_kind():
    from harness.errors import ConfigError

    ssh_spec = SimpleNamespace(kind="ssh", source="devices/gpu-box.yaml", power=({"meter": "nvml"},))
    with pytest.raises(ConfigError, match=r"power\[0\]\.meter.*only a 'local' device"):
        open_meters(ssh_spec, SimpleNamespace(meter_source=lambda root: None))   # a kind without one


def test_a_meter_still_overriding_check_is_refused_not_skipped():
    # Meter.check was renamed cross_check: an old third-party meter's checks must not vanish silently
    with pytest.raises(TypeError, match="cross_check"):
        class OldMeter(Meter):
            @classmethod
            def check(cls, options, source, where):
                raise AssertionError("never called")
