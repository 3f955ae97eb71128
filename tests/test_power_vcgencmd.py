"""Raspberry Pi 5 PMIC meter against a fake vcgencmd speaking the real format."""
import importlib.util
import os
import sys

import pytest

from harness.power import MeterError, open_meters
from harness.power.vcgencmd import parse_pmic
from power_helpers import FAKES, VirtualClock, fake, record_polls, spec_with


def expected_watts():
    spec = importlib.util.spec_from_loader("fake_vcgencmd", loader=None)
    mod = importlib.util.module_from_spec(spec)
    exec((FAKES / "vcgencmd").read_text().replace("sys.exit(main())", "pass"), mod.__dict__)
    return sum(a * v for _n, _ci, a, _vi, v in mod.RAILS)


def test_parse_real_lines():
    text = ("     VDD_CORE_A current(7)=0.81262990A\n     VDD_CORE_V volt(15)=0.72000000V\n"
            "        EXT5V_V volt(24)=5.07860000V\n garbage\n")
    rails, bad = parse_pmic(text)
    assert rails == {"VDD_CORE": pytest.approx(0.8126299 * 0.72)} and bad == 1


def test_meter_against_the_fake_program():
    clock = VirtualClock()
    (m,) = open_meters(spec_with([{"meter": "vcgencmd", "interval_ms": 20, "command": fake("vcgencmd")}]), None,
                       clock=clock)
    trace = record_polls(m, clock, 0.105)  # a call at 0, 20, ..., 100 ms and one at stop
    assert len(trace.t) == 6 + 1 and trace.bad_lines == 0
    assert [round(b - a, 6) for a, b in zip(trace.t, trace.t[1:])] == [0.02] * 5 + [0.005]
    assert all(w == pytest.approx(expected_watts(), rel=1e-6) for w in trace.watts)
    assert "VDD_CORE" in trace.rails and "EXT5V" not in trace.rails


def test_failing_command_is_reported_at_start(monkeypatch):
    monkeypatch.setenv("FAKE_PMIC_FAIL", "1")
    (m,) = open_meters(spec_with([{"meter": "vcgencmd", "command": fake("vcgencmd")}]), None)
    with pytest.raises(MeterError, match="pmic_read_adc failed"):
        m.start()
