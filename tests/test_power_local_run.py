"""End to end on the local kind: the real runner in a subprocess, bracketed by a meter
(the fake tegrastats and a sysfs RAPL tree), summarized on the runner's window."""
import time
from types import SimpleNamespace

import pytest

from harness.devices import open_device
from harness.inventory import parse_device
from harness.power import measure_with_meters, min_window_s, open_meters
from harness.power.source import LocalSource
from power_helpers import fake


def test_runner_window_with_tegrastats(tmp_path, identity_model):
    spec = parse_device({"kind": "local", "power": [
        {"meter": "tegrastats", "interval_ms": 20, "command": fake("tegrastats") + ["--watts", "6.0"]}]},
        tmp_path / "jetson.yaml", "jetson")
    meters = open_meters(spec, None)
    window = min_window_s(meters)
    assert window == pytest.approx(0.4)
    with open_device(spec) as dev:
        run_spec = {"model": dev.deploy(identity_model), "min_iterations": 10, "min_duration_s": window,
                    "warmup": 2}
        try:
            raw, (energy,) = measure_with_meters(meters, lambda: dev.run(run_spec), idle_s=0.5)
        finally:
            for m in meters:
                m.close()
    n = raw["loop"]["iterations"]
    w = raw["window"]["end_unix_s"] - raw["window"]["start_unix_s"]
    assert energy["coverage"] == pytest.approx(1.0) and energy["gaps"] == []
    assert energy["avg_power_w"] == pytest.approx(6.0)
    assert energy["energy_per_inference_j"] == pytest.approx(6.0 * w / n)
    assert energy["net_energy_per_inference_j"] == pytest.approx(0.0, abs=1e-9)
    assert energy["n_samples"] >= 15 and energy["source"] == "tegrastats"


class TenWattPackage(LocalSource):
    """A sysfs tree whose package counter integrates 10 W in real time, computed at each
    read (a writer thread would add its own scheduling lag to the figure)."""

    def __init__(self, root):
        super().__init__(root)
        self.t0 = time.time()

    def read_text(self, path):
        if path.endswith("energy_uj"):
            return f"{int((time.time() - self.t0) * 10e6)}\n"
        return super().read_text(path)


def test_runner_window_with_a_rapl_counter(tmp_path, identity_model):
    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    (zone / "energy_uj").write_text("0\n")
    spec = parse_device({"kind": "local", "power": [{"meter": "rapl", "interval_ms": 20, "root": str(tmp_path)}]},
                        tmp_path / "box.yaml", "box")
    source = TenWattPackage(str(tmp_path))
    meters = open_meters(spec, SimpleNamespace(meter_source=lambda root: source))
    with open_device(spec) as dev:
        run_spec = {"model": dev.deploy(identity_model), "min_iterations": 10,
                    "min_duration_s": min_window_s(meters), "warmup": 2}
        raw, (energy,) = measure_with_meters(meters, lambda: dev.run(run_spec), idle_s=0.5)
    assert energy["method"] == "counter" and energy["coverage"] == pytest.approx(1.0)
    assert energy["avg_power_w"] == pytest.approx(10.0, rel=0.01)
    assert energy["idle_power_w"] == pytest.approx(10.0, rel=0.01)
