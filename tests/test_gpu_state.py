"""The GPU's state around a timed window: the runner reads NVML (a fake pynvml answering
with recorded readings, tests/data/nvml_recorded.json), machine.py makes a window of the
two edges, validity.py judges it. A real GPU runs the same code in benchmarks/gpu_check.py."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from harness import machine
from harness.ondevice import runner
from harness.validity import Thresholds
from paths import ROOT
from fake_measurements import verdict

from paths import FAKE_PYNVML as FAKE_DIR  # noqa: E402
RECORDED = json.loads((ROOT / "tests" / "data" / "nvml_recorded.json").read_text())


@pytest.fixture
def fake_nvml(monkeypatch):
    spec = importlib.util.spec_from_file_location("pynvml", FAKE_DIR / "pynvml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def edges(fake, scenario):
    """The runner's two machine snapshots of one window, GPU 0 read through (fake) pynvml."""
    fake.SCENARIO = scenario
    gpu = runner.GpuState(0)
    out = []
    for edge in (0, 1):
        fake.EDGE = edge
        out.append(runner.machine_snapshot(gpu))
    gpu.close()
    return out


def gpu_window(fake, scenario):
    """The GPU's window alone: the CPU half of an in-process snapshot pair taken
    microseconds apart would judge this machine's load, not the recorded GPU."""
    before, after = edges(fake, scenario)
    return machine.window_state({"time_unix_s": 100.0, "gpu": before["gpu"]},
                                {"time_unix_s": 101.0, "gpu": after["gpu"]})


def test_snapshot_carries_what_nvml_recorded(fake_nvml):
    before, after = edges(fake_nvml, "steady")
    g = after["gpu"]
    rec = RECORDED["scenarios"]["steady"][1]
    assert (g["sm_clock_mhz"], g["mem_clock_mhz"], g["temperature_c"]) == (rec["sm"], rec["mem"], rec["temp"])
    assert (g["power_limit_mw"], g["throttle_reasons"], g["persistence_mode"]) == (700000, 0, 1)
    assert g["energy_mj"] == rec["energy"] and g["violation_ns"] == rec["violation"]
    assert g["name"] == "NVIDIA H200" and "unsupported" not in g


def test_steady_window_is_valid_with_its_energy(fake_nvml):
    w = gpu_window(fake_nvml, "steady")
    g = w["gpu"]
    assert g["sm_clock_mhz"] == [1980, 1980] and g["sm_clock_change"] == 0.0
    assert g["energy_j"] == pytest.approx(14.0)   # 987668321 - 987654321 mJ
    assert g["throttle"] == [] and "violation_s" not in g
    assert verdict([w] * 3)["verdict"] == "valid"


def test_thermal_throttle_and_clock_drop_invalidate_with_the_reason(fake_nvml):
    w = gpu_window(fake_nvml, "thermal")
    v = verdict([{}, w, {}])
    assert v["verdict"] == "invalid"
    text = " | ".join(v["reasons"])
    assert "round 2: the GPU throttled during the window" in text and "SW thermal slowdown" in text
    assert "thermal policy held the clocks 412.0 ms" in text
    assert "SM 1980 -> 1755 MHz" in text and "limit 10%" in text
    assert len(v["reasons"]) == 2
    hot = verdict([w], thresholds=Thresholds(max_temp_c=85.0, max_gpu_clock_change=1.0))
    assert any("the GPU reached 89 C (limit 85 C)" in r for r in hot["reasons"])


def test_a_throttle_between_the_edges_shows_in_the_violation_counters(fake_nvml):
    w = gpu_window(fake_nvml, "hidden_power_cap")
    assert w["gpu"]["throttle"] == []  # both edge snapshots look clean...
    v = verdict([w])
    assert v["verdict"] == "invalid"
    assert any("power policy held the clocks 35.0 ms" in r for r in v["reasons"])


def test_an_idle_gpu_at_the_edge_is_not_a_throttle(fake_nvml):
    w = gpu_window(fake_nvml, "idle_after")
    assert w["gpu"]["throttle"] == []
    assert verdict([w])["verdict"] == "valid"


def test_energy_counter_wraps_at_64_bits(fake_nvml):
    w = gpu_window(fake_nvml, "counter_wrap")
    assert w["gpu"]["energy_j"] == pytest.approx(5.0)   # 2000 mJ to the wrap, 3000 after it


def test_an_old_driver_answers_what_it_can(fake_nvml):
    w = gpu_window(fake_nvml, "old_driver")
    g = w["gpu"]
    assert g["throttle"] == ["HW slowdown"]  # read through the pre-535 name
    assert "energy_j" not in g and "violation_s" not in g
    assert "nvmlDeviceGetTotalEnergyConsumption" in g["unsupported"]
    assert "nvmlDeviceGetCurrentClocksEventReasons" not in g["unsupported"]
    v = verdict([w])
    assert any("HW slowdown" in r for r in v["reasons"]) and any("SM 1328 -> 1114 MHz" in r for r in v["reasons"])
    hints = machine.stability_hints(edges(fake_nvml, "old_driver")[1])
    assert any("persistence mode off" in h for h in hints) and any("HW slowdown" in h for h in hints)


def test_runner_process_reads_the_gpu_and_its_own_memory(fake_nvml):
    fake_nvml.SCENARIO, fake_nvml.EDGE = "steady", 1
    gpu = runner.GpuState(0)
    assert gpu.process_memory_bytes() == 570425344   # this PID's entry, not the other process's
    fake_nvml.SCENARIO = "old_driver"
    assert gpu.process_memory_bytes() is None         # NVML does not tell: no figure, no guess
    no_such = runner.GpuState(3)
    assert no_such.snapshot() == {"index": 3, "missing": "NVML cannot open GPU 3: Invalid Argument"}


def _machine_gpu(tmp_path, pythonpath, **env):
    done = subprocess.run([sys.executable, str(ROOT / "harness" / "ondevice" / "runner.py"), "--machine-gpu", "0"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(pythonpath), **env))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_fresh_runner_reads_nvml_through_pynvml(tmp_path):
    snap = _machine_gpu(tmp_path, FAKE_DIR, FAKE_NVML_SCENARIO="thermal", FAKE_NVML_EDGE="1")
    assert snap["gpu"]["throttle_reasons"] == 32 and snap["gpu"]["sm_clock_mhz"] == 1755
    assert snap["loadavg"] is not None  # the CPU side is still there


def test_missing_nvml_is_a_note_not_a_crash(tmp_path):
    broken = tmp_path / "site"
    broken.mkdir()
    (broken / "pynvml.py").write_text("raise ImportError('No module named pynvml')\n")
    before = _machine_gpu(tmp_path, broken)
    assert "pynvml is not importable" in before["gpu"]["missing"]
    assert "nvidia-ml-py" in before["gpu"]["missing"]
    w = machine.window_state({"time_unix_s": 100.0, "gpu": before["gpu"]}, {"time_unix_s": 101.0, "gpu": before["gpu"]})
    v = verdict([w])
    assert v["verdict"] == "valid"
    assert any(n.startswith("GPU state not read: pynvml is not importable") for n in v["notes"])
    assert machine.stability_hints(before)[-1].startswith("GPU state not read")


def test_memory_log_keeps_device_memory_per_phase_beside_rss(fake_nvml):
    class TorchCounters:
        """Stands in for torch.cuda's allocator counters (they need a CUDA device)."""

        def __init__(self):
            self.peaks = iter([0, 9 << 20, 12 << 20, 3 << 20])

        def memory_phase(self):
            return {"torch_peak_allocated_bytes": next(self.peaks)}

    fake_nvml.SCENARIO, fake_nvml.EDGE = "steady", 0
    log = runner.MemoryLog()
    log.mark("before_load")
    log.watch_gpu(TorchCounters(), runner.GpuState(0))
    log.mark("after_init")
    fake_nvml.EDGE = 1
    log.mark("after_first")
    log.mark("after_timed")
    out = log.result()
    assert out["peak_rss_kb"] > 0
    assert list(out["gpu"]) == ["before_init", "after_init", "after_first", "after_timed"]
    assert out["gpu"]["after_first"] == {"torch_peak_allocated_bytes": 12 << 20, "nvml_process_bytes": 570425344}
    assert out["gpu_peak_allocated_bytes"] == 12 << 20 and out["gpu_process_peak_bytes"] == 570425344


@pytest.mark.parametrize("settings, words", [
    ({"device": "gpu0"}, "settings.device: expected cpu, cuda or cuda:N, got 'gpu0'"),
    ({"device": "cuda:x"}, "settings.device: expected cpu, cuda or cuda:N"),
    ({"io": "pinned"}, "settings.io: expected one of device, host"),
    ({"sync": "yes"}, "settings.sync"),
    ({"gpu_index": -1}, "settings.gpu_index"),
])
def test_gpu_settings_in_the_device_yaml_are_checked(settings, words):
    from harness.errors import ConfigError
    from harness.inventory import parse_device

    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        parse_device({"kind": "local", "settings": settings}, "devices/box.yaml", "box")


def test_gpu_settings_reach_the_run_spec_only_when_set():
    from harness.inventory import Inventory, parse_device

    plain = parse_device({"kind": "local"}, "devices/box.yaml", "box")
    assert not set(plain.settings) & {"device", "io", "sync", "gpu_index", "trt_engine_cache_dir"}
    desktop = Inventory(ROOT / "devices").get("gpu-desktop")
    assert {k: desktop.settings[k] for k in ("device", "io", "sync", "gpu_index")} == {
        "device": "cuda:0", "io": "device", "sync": True, "gpu_index": 0}
    assert desktop.validity.max_gpu_clock_change == 0.05 and "torch" in desktop.capabilities.runtimes
    jetson = Inventory(ROOT / "devices").get("jetson-orin-gpu")
    assert jetson.settings["trt_engine_cache_dir"] == "/home/nvidia/harness-trt-cache"
