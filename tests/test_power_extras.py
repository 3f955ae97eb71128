"""Joulescope and Otii: optional packages, imported lazily; logic checked with fakes."""
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from harness.power import MeterError, open_meters
from harness.errors import ConfigError
from harness.power.energy import summarize
from power_helpers import spec_with


def one(entry):
    (m,) = open_meters(spec_with([entry]), None)
    return m


@pytest.mark.parametrize("entry,module,package", [
    ({"meter": "joulescope"}, "joulescope", "joulescope"),
    ({"meter": "otii"}, "otii_tcp_client.otii_client", "otii-tcp-client"),
])
def test_missing_optional_package_is_a_clear_error(monkeypatch, entry, module, package):
    monkeypatch.setitem(sys.modules, module, None)
    m = one(entry)
    with pytest.raises(MeterError, match=f"pip install {package}"):
        m.start()


class FakeJsDevice:
    def __init__(self, n=1000):
        amps = np.full(n, 0.5, dtype=np.float32)
        volts = np.full(n, 4.0, dtype=np.float32)
        self.stream_buffer = SimpleNamespace(
            sample_id_range=(0, n),
            samples_get=lambda a, b, fields: {"signals": {"current": {"value": amps[a:b]},
                                                          "voltage": {"value": volts[a:b]}}})
        self.params = {}

    def open(self):
        pass

    def close(self):
        pass

    def parameter_set(self, k, v):
        self.params[k] = v

    def start(self):
        pass

    def stop(self):
        pass


def test_joulescope_logic_with_a_fake_package():
    dev = FakeJsDevice()
    m = one({"meter": "joulescope", "sampling_frequency": 1000})
    m.js = SimpleNamespace(scan_require_one=lambda config: dev)
    m.start()
    trace = m.stop()
    m.close()
    assert dev.params == {"sampling_frequency": 1000}
    out = summarize(trace, trace.t[0], trace.t[-1], 10)
    assert out["avg_power_w"] == pytest.approx(2.0) and out["n_samples"] == 1000


def test_otii_logic_with_a_fake_package_and_option_check():
    rec = SimpleNamespace(get_channel_data_count=lambda dev, ch: 4,
                          get_channel_data=lambda dev, ch, i, n: {"timestamp": 0.0, "interval": 0.25,
                                                                  "values": [0.1, 0.1, 0.1, 0.1]})
    project = SimpleNamespace(start_recording=lambda: None, stop_recording=lambda: None,
                              get_last_recording=lambda: rec)
    arc = SimpleNamespace(id="arc1", enable_channel=lambda ch, on: None)
    otii = SimpleNamespace(get_devices=lambda: [arc], get_active_project=lambda: project)
    m = one({"meter": "otii", "channel": "mc", "voltage_v": 3.0})
    m.client_module = SimpleNamespace(OtiiClient=lambda: SimpleNamespace(connect=lambda host, port: otii))
    m.start()
    trace = m.stop()
    assert trace.watts == pytest.approx([0.3] * 4) and trace.nominal_rate_hz == 4.0
    with pytest.raises(ConfigError, match=r"power\[0\]\.voltage_v"):
        one({"meter": "otii", "channel": "mc"})
