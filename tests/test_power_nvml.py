"""The NVML meter's logic against an injected fake pynvml (the real one needs a GPU)."""
import threading
from types import SimpleNamespace

import pytest

from harness.power import MeterError, open_meters
from harness.power.energy import summarize
from power_helpers import VirtualClock, record_polls, spec_with


class NVMLError(Exception):
    pass


class FakeNvml:
    """A GPU drawing ``watts``; the energy counter integrates it on ``clock`` (the meter's)."""

    def __init__(self, watts=150.0, counter=True, arch=8, clock=None):
        self.watts, self.counter, self.arch = watts, counter, arch
        self.clock = clock or VirtualClock()
        self.t0 = self.clock.time()
        self.init = self.shutdown = 0

    def nvmlInit(self):
        self.init += 1

    def nvmlShutdown(self):
        self.shutdown += 1

    def nvmlDeviceGetHandleByIndex(self, i):
        if i != 0:
            raise NVMLError("Invalid Argument")
        return "h0"

    def nvmlDeviceGetName(self, h):
        return "Fake GPU"

    def nvmlSystemGetDriverVersion(self):
        return b"999.1"

    def nvmlDeviceGetArchitecture(self, h):
        return self.arch

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.counter:
            raise NVMLError("Not Supported")
        return int(1_000_000 + (self.clock.time() - self.t0) * self.watts * 1000)

    def nvmlDeviceGetPowerUsage(self, h):
        return int(self.watts * 1000)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=2 << 30, total=80 << 30, free=78 << 30)


def nvml_meter(fake, **opts):
    clock = fake.clock if fake is not None else None
    (m,) = open_meters(spec_with([dict({"meter": "nvml", "interval_ms": 10}, **opts)]), None, clock=clock)
    m.nvml = fake
    return m


def test_counter_mode_differences_the_energy_counter():
    fake = FakeNvml(watts=150.0)
    m = nvml_meter(fake)
    trace = record_polls(m, fake.clock, 0.405)
    m.close()
    assert trace.method == "counter" and trace.resolution_j == 1e-3
    assert len(trace.t) == 41 + 1
    out = summarize(trace, trace.t[2], trace.t[-2], 100)
    assert out["avg_power_w"] == pytest.approx(150.0, rel=1e-3)
    assert out["extra"]["gpu_memory_used_peak_bytes"] == 2 << 30
    assert out["extra"]["gpu_name"] == "Fake GPU" and out["extra"]["driver_version"] == "999.1"
    assert fake.shutdown == 1


def test_auto_falls_back_to_power_sampling_with_averaging_noted():
    fake = FakeNvml(watts=75.0, counter=False)
    m = nvml_meter(fake)
    trace = record_polls(m, fake.clock, 0.305)
    assert trace.method == "trapezoid" and len(trace.watts) == 31 + 1 and trace.averaging_s == 1.0
    assert all(w == 75.0 for w in trace.watts)
    assert any("unavailable" in n for n in trace.notes)


def test_counter_mode_refuses_without_counter():
    m = nvml_meter(FakeNvml(counter=False), mode="counter")
    with pytest.raises(MeterError, match="not supported"):
        m.start()


def test_bad_gpu_index_and_missing_package():
    m = nvml_meter(FakeNvml(), index=3)
    with pytest.raises(MeterError, match="cannot open GPU 3"):
        m.start()
    import sys

    m = nvml_meter(None)
    saved = sys.modules.get("pynvml")
    sys.modules["pynvml"] = None  # makes "import pynvml" raise ImportError
    try:
        with pytest.raises(MeterError, match="nvidia-ml-py"):
            m.start()
    finally:
        if saved is None:
            del sys.modules["pynvml"]
        else:
            sys.modules["pynvml"] = saved


class WrappingNvml(FakeNvml):
    """The energy counter (an unsigned 64-bit mJ count) 4 J short of wrapping at start."""

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        return (2 ** 64 - 4000 + int((self.clock.time() - self.t0) * self.watts * 1000)) % 2 ** 64


def test_counter_mode_unwraps_the_64_bit_counter():
    fake = WrappingNvml(watts=100.0)
    m = nvml_meter(fake)
    trace = record_polls(m, fake.clock, 0.205)   # 20 J drawn: the counter wraps after 4 J
    m.close()
    assert trace.joules == sorted(trace.joules)   # cumulative, never a backwards step
    assert trace.joules[-1] == pytest.approx(20.5, abs=0.2)
    assert trace.extra["counter_wraps"] == 1
    out = summarize(trace, trace.t[1], trace.t[-2], 10)
    assert out["avg_power_w"] == pytest.approx(100.0, rel=1e-3)
