"""End to end on the local kind: the real runner in a subprocess, bracketed by a meter
(the fake tegrastats and a sysfs RAPL tree), summarized on the runner's window."""
import threading
import time

import pytest

from harness.devices import open_device
from harness.inventory import parse_device
from harness.power import measure_with_meters, min_window_s, open_meters
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


def test_runner_window_with_a_rapl_counter(tmp_path, identity_model):
    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    counter = zone / "energy_uj"
    counter.write_text("0\n")
    stop = threading.Event()

    def package_at_10_watts():  # the "CPU" integrates 10 W into the counter in real time
        t0 = time.time()
        while not stop.is_set():
            tmp = zone / "energy_uj.tmp"
            tmp.write_text(f"{int((time.time() - t0) * 10e6)}\n")
            tmp.replace(counter)
            stop.wait(0.002)

    writer = threading.Thread(target=package_at_10_watts, daemon=True)
    writer.start()
    try:
        spec = parse_device({"kind": "local", "power": [{"meter": "rapl", "interval_ms": 20, "root": str(tmp_path)}]},
                            tmp_path / "box.yaml", "box")
        meters = open_meters(spec, None)
        with open_device(spec) as dev:
            run_spec = {"model": dev.deploy(identity_model), "min_iterations": 10,
                        "min_duration_s": min_window_s(meters), "warmup": 2}
            raw, (energy,) = measure_with_meters(meters, lambda: dev.run(run_spec), idle_s=0.5)
    finally:
        stop.set()
        writer.join(timeout=5)
    assert energy["method"] == "counter" and energy["coverage"] == pytest.approx(1.0)
    assert energy["avg_power_w"] == pytest.approx(10.0, rel=0.05)
    assert energy["idle_power_w"] == pytest.approx(10.0, rel=0.05)
