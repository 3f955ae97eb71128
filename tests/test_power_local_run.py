"""End to end on the local kind: the real runner in a subprocess, bracketed by a meter
(a sysfs hwmon tree and a sysfs RAPL tree), summarized on the runner's window.

The runner stamps its window on the real wall clock; the meters run on a FollowingClock
that keeps pace with it and reads at every interval whatever the machine's load, so the
figures below hold on a busy machine too."""
import math
from types import SimpleNamespace

import pytest

from harness.devices import open_device
from harness.inventory import parse_device
from harness.power import measure_with_meters, min_window_s, open_meters
from harness.power.source import LocalSource
from power_helpers import FollowingClock


def test_runner_window_with_sampled_power(tmp_path, identity_model):
    hw = tmp_path / "sys/class/hwmon/hwmon1"
    hw.mkdir(parents=True)
    for name, text in (("name", "ina226"), ("in1_input", "12000"), ("curr1_input", "500"),
                       ("power1_input", "6000000")):
        (hw / name).write_text(text + "\n")
    spec = parse_device({"kind": "local", "power": [{"meter": "ina2xx", "interval_ms": 20, "root": str(tmp_path)}]},
                        tmp_path / "board.yaml", "board")
    clock = FollowingClock()
    meters = open_meters(spec, None, clock=clock)
    window = min_window_s(meters)
    assert window == pytest.approx(0.4)
    with open_device(spec) as dev:
        run_spec = {"model": dev.deploy(identity_model), "min_iterations": 10, "min_duration_s": window,
                    "warmup": 2}
        raw, (energy,) = measure_with_meters(meters, lambda: clock.follow(lambda: dev.run(run_spec)),
                                             idle_s=0.5)
    n = raw["loop"]["iterations"]
    w = raw["window"]["end_unix_s"] - raw["window"]["start_unix_s"]
    assert w >= window
    assert energy["coverage"] == pytest.approx(1.0) and energy["gaps"] == []
    assert energy["avg_power_w"] == pytest.approx(6.0)
    assert energy["energy_per_inference_j"] == pytest.approx(6.0 * w / n)
    assert energy["net_energy_per_inference_j"] == pytest.approx(0.0, abs=1e-9)
    # a read on every 20 ms of the window
    assert energy["n_samples"] >= math.floor(w / 0.02) and energy["source"] == "ina2xx"


class TenWattPackage(LocalSource):
    """A sysfs tree whose package counter integrates 10 W on the meter's clock, computed at
    each read (a writer thread would add its own scheduling lag to the figure)."""

    def __init__(self, root, clock):
        super().__init__(root)
        self.clock = clock
        self.t0 = clock.time()

    def read_text(self, path):
        if path.endswith("energy_uj"):
            return f"{round((self.clock.time() - self.t0) * 10e6)}\n"
        return super().read_text(path)


def test_runner_window_with_a_rapl_counter(tmp_path, identity_model):
    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    (zone / "energy_uj").write_text("0\n")
    spec = parse_device({"kind": "local", "power": [{"meter": "rapl", "interval_ms": 20, "root": str(tmp_path)}]},
                        tmp_path / "box.yaml", "box")
    clock = FollowingClock()
    source = TenWattPackage(str(tmp_path), clock)
    meters = open_meters(spec, SimpleNamespace(meter_source=lambda root: source), clock=clock)
    with open_device(spec) as dev:
        run_spec = {"model": dev.deploy(identity_model), "min_iterations": 10,
                    "min_duration_s": min_window_s(meters), "warmup": 2}
        raw, (energy,) = measure_with_meters(meters, lambda: clock.follow(lambda: dev.run(run_spec)),
                                             idle_s=0.5)
    assert energy["method"] == "counter" and energy["coverage"] == pytest.approx(1.0)
    assert energy["avg_power_w"] == pytest.approx(10.0, rel=1e-4)
    assert energy["idle_power_w"] == pytest.approx(10.0, rel=1e-4)
    assert energy["net_energy_per_inference_j"] == pytest.approx(0.0, abs=1e-6)
