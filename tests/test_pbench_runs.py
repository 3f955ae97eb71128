"""Suite runs with pytest-benchmark's options (issue 8), each an inner pytest in a subprocess.

A tiny generated "probe" model keeps every run to a few seconds. The slow run swaps the
probe's base model for a MatMul chain under the same manifest and variant name (median
~94 us against ~3.7 us on the 2-core dev machine, ~25x): what a "slower variant under the
same name" looks like to pytest-benchmark.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from harness.store import Store
from onnx_models import matmul_chain
from inner_pytest import pytest_argv, run_inner
from paths import ROOT

TIMEOUT_S = 240
# Generous for the unchanged repeat on a noisy shared 2-core machine; the slow probe is
# ~25x slower, far past it.
COMPARE_FAIL = "median:300%"


def models_dir(folder: Path, slow: bool = False, techniques=("fp32",)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    width, depth = (512, 8) if slow else (8, 1)
    matmul_chain(folder / "probe.onnx", width, depth)
    variants = "".join(f"  - {{name: {t}, technique: {t}}}\n" for t in techniques)
    (folder / "probe.yaml").write_text(f"name: probe\nbase: probe.onnx\nvariants:\n{variants}")
    return folder


def devices_dir(folder: Path, names=("local",)) -> Path:
    """Copies of the embedded local device under other names: 'boards' of one machine."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "devices" / "local.yaml").read_text()
    for name in names:
        (folder / f"{name}.yaml").write_text(
            text.replace("description: This machine", f"description: {name}, this machine"))
    return folder


def run_suite(tmp: Path, models: Path, *args, devices=("local",), suites=("suites/test_benchmark.py",)):
    """An inner `pytest suites/...` of this checkout, run in `tmp` as a user runs it in a
    project folder: pytest-benchmark's default storage (./.benchmarks) lands there."""
    cmd = pytest_argv(*(ROOT / s for s in suites), "--rootdir", ROOT, "-c", ROOT / "pyproject.toml", "-q", "-rs",
                      "--devices-dir", devices_dir(tmp / "devices", devices), "--models-dir", models,
                      "--store", f"sqlite:///{tmp / 'harness.sqlite'}", "--report", "", "--min-duration", "0.1")
    for name in devices:
        cmd += ["--device", name]
    return _run(cmd + list(args), cwd=tmp)


def _run(cmd, cwd):
    return run_inner(cmd, cwd=cwd, timeout=TIMEOUT_S)


def _ok(proc, rc=0):
    assert proc.returncode == rc, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return proc


def test_json_has_the_device_samples_and_the_harness_median(tmp_path):
    out = tmp_path / "bench.json"
    histogram = ([f"--benchmark-histogram={tmp_path / 'hist' / 'h'}"]
                 if importlib.util.find_spec("pygal") and importlib.util.find_spec("pygaljs") else [])
    _ok(run_suite(tmp_path, models_dir(tmp_path / "models", techniques=("fp32", "fp16")),
                  f"--benchmark-json={out}", *histogram, devices=("board-a", "board-b")))
    if histogram:  # pytest-benchmark[histogram] (.ci/install.d/pbench.sh): one chart per device group
        assert sorted(p.name for p in (tmp_path / "hist").iterdir()) == ["h-board-a.svg", "h-board-b.svg"]
    doc = json.loads(out.read_text())
    measured = {(m.device, m.variant_id): m for m in Store(f"sqlite:///{tmp_path / 'harness.sqlite'}").measurements()}
    assert set(measured) == {(d, f"probe/{v}") for d in ("board-a", "board-b") for v in ("fp32", "fp16")}

    benches = {(b["extra_info"]["device"], b["extra_info"]["variant"]): b for b in doc["benchmarks"]}
    assert set(benches) == set(measured)  # one benchmark per device and variant
    for (device, variant), bench in benches.items():
        m = measured[device, variant]
        stats = bench["stats"]
        assert stats["rounds"] == len(stats["data"]) == len(m.samples_ns) == m.latency.n
        assert stats["iterations"] == 1
        assert stats["data"] == pytest.approx([ns / 1e9 for ns in m.samples_ns], rel=1e-12)
        assert stats["median"] * 1e3 == pytest.approx(m.latency.median_ms, rel=1e-9)
        assert bench["group"] == device
        assert device in bench["fullname"] and variant in bench["fullname"]
        info = bench["extra_info"]
        assert info["model_sha256"] == m.model_sha256
        assert info["memory"]["peak_rss_kb"] == m.memory.peak_rss_kb
        assert info["measurement_id"] == m.id and info["run_id"] == m.run_id
        assert "accuracy" in info and "energy" in info
        assert bench["options"]["timer"].startswith("device")
    devices = doc["machine_info"]["harness_devices"]
    assert set(devices) == {"board-a", "board-b"}
    assert devices["board-a"]["description"].startswith("board-a") and devices["board-a"]["kind"] == "local"


def test_compare_fail_catches_a_slower_variant_under_the_same_name(tmp_path):
    fast = models_dir(tmp_path / "fast")
    slow = models_dir(tmp_path / "slow", slow=True)
    save = ["--benchmark-autosave"]  # into ./.benchmarks, pytest-benchmark's default
    compare = ["--benchmark-compare=0001", f"--benchmark-compare-fail={COMPARE_FAIL}"]

    _ok(run_suite(tmp_path, fast, *save))                       # 0001: the reference
    same = _ok(run_suite(tmp_path, fast, *save, *compare))      # 0002: unchanged, passes
    assert "Performance has regressed" not in same.stdout + same.stderr
    slower = run_suite(tmp_path, slow, *save, *compare)         # 0003: same name, ~100x slower
    assert slower.returncode == 1, slower.stdout[-4000:] + slower.stderr[-2000:]
    assert "Performance has regressed" in slower.stdout + slower.stderr
    assert "test_device[local-probe/fp32]" in slower.stdout + slower.stderr
    assert "harness measurements" in slower.stdout  # the harness's table still printed

    saved = sorted(p.name for p in (tmp_path / ".benchmarks").rglob("*.json"))
    assert [name[:4] for name in saved] == ["0001", "0002", "0003"]
    # This interpreter's copy (python -m), never whichever pytest-benchmark is first on PATH.
    table = _ok(_run([sys.executable, "-m", "pytest_benchmark", "compare", "0001", "0003", "--group-by=group", "--columns=min,median,max,rounds"],
                     cwd=tmp_path))
    assert "test_device[local-probe/fp32]" in table.stdout
    assert "local" in table.stdout


def test_skip_disable_and_no_plugin_keep_the_harness_working(tmp_path):
    models = models_dir(tmp_path / "models")
    suites = ("suites/test_benchmark.py", "suites/test_latency.py")
    store = Store(f"sqlite:///{tmp_path / 'harness.sqlite'}")

    skipped = _ok(run_suite(tmp_path, models, "--benchmark-skip", suites=suites))
    assert "1 passed, 1 skipped" in skipped.stdout and "--benchmark-skip" in skipped.stdout
    assert "harness measurements" in skipped.stdout

    out = tmp_path / "disabled.json"
    disabled = _ok(run_suite(tmp_path, models, "--benchmark-disable", f"--benchmark-json={out}", suites=suites))
    assert "2 passed" in disabled.stdout and "warning" not in disabled.stdout.lower()
    assert not out.exists() or out.read_text() == ""  # measured, nothing recorded

    plain = _ok(run_suite(tmp_path, models, "-p", "no:benchmark", "--report", str(tmp_path / "plain.html"),
                          suites=suites))
    assert "1 passed, 1 skipped" in plain.stdout and "pytest-benchmark is not active" in plain.stdout
    assert "harness measurements" in plain.stdout and (tmp_path / "plain.html").stat().st_size > 0

    only = _ok(run_suite(tmp_path, models, "--benchmark-only", "--report", str(tmp_path / "only.html"),
                         suites=suites))
    assert "1 passed, 1 skipped" in only.stdout and "benchmark 'local'" in only.stdout
    assert "harness measurements" in only.stdout and (tmp_path / "only.html").stat().st_size > 0

    # Every run measured, whatever pytest-benchmark did. A run on a busy machine may hold
    # two rows of the variant: the local YAML's validity.remeasure measures an INVALID one
    # (other processes' contention) once more, and the invalid row stays in the store as
    # evidence; the store and the gates take a run's last row (Store.key_history).
    per_run = {}
    for m in store.measurements(samples=False):
        per_run.setdefault(m.run_id, []).append(m)
    assert len(per_run) == 4
    for rows in per_run.values():
        assert {m.variant_id for m in rows} == {"probe/fp32"}
        assert len(rows) <= 2 and all(not m.valid for m in rows[:-1]), [m.validity for m in rows]


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed")
def test_xdist_workers_hand_device_results_to_the_controller(tmp_path):
    out = tmp_path / "bench.json"
    _ok(run_suite(tmp_path, models_dir(tmp_path / "models"), "-n", "2", f"--benchmark-json={out}",
                  devices=("board-a", "board-b")))
    measured = {m.device: m for m in Store(f"sqlite:///{tmp_path / 'harness.sqlite'}").measurements()}
    benches = {b["extra_info"]["device"]: b for b in json.loads(out.read_text())["benchmarks"]}
    assert set(benches) == set(measured) == {"board-a", "board-b"}
    for device, bench in benches.items():
        assert bench["group"] == device
        assert bench["stats"]["rounds"] == len(measured[device].samples_ns)
        assert bench["stats"]["median"] * 1e3 == pytest.approx(measured[device].latency.median_ms, rel=1e-9)
    assert set(json.loads(out.read_text())["machine_info"]["harness_devices"]) == {"board-a", "board-b"}


def test_two_boards_are_never_compared_as_one(tmp_path):
    """A slow board-b run against a fast board-a baseline: no result matches, nothing fails."""
    save = ["--benchmark-autosave"]
    _ok(run_suite(tmp_path, models_dir(tmp_path / "fast"), *save, devices=("board-a",)))
    other = _ok(run_suite(tmp_path, models_dir(tmp_path / "slow", slow=True), *save,
                          "--benchmark-compare=0001", f"--benchmark-compare-fail={COMPARE_FAIL}",
                          devices=("board-b",)))
    text = other.stdout + other.stderr
    assert "Performance has regressed" not in text
    assert "test_device[board-b-probe/fp32]" in text and "test_device[board-a-probe/fp32]" not in text
    assert "machine_info is different" in text  # pytest-benchmark's own warning: other devices


def test_storage_outside_the_cwd_with_other_devices_warns_instead_of_crashing(tmp_path):
    """pytest-benchmark#217: its machine_info warning fails on a storage outside the cwd."""
    storage = f"--benchmark-storage=file://{tmp_path / 'shared' / 'benchmarks'}"
    models = models_dir(tmp_path / "models")
    work = tmp_path / "ci-job"
    work.mkdir()
    _ok(run_suite(work, models, storage, "--benchmark-autosave", devices=("board-a",)))
    other = _ok(run_suite(work, models, storage, "--benchmark-compare", devices=("board-b",)))
    assert "machine_info is different" in other.stdout + other.stderr


def test_energy_from_a_power_meter_is_in_extra_info(tmp_path):
    """A board with a (fake) tegrastats meter: its energy summary lands in extra_info."""
    devices = tmp_path / "boards"  # run_suite's own --devices-dir is tmp_path/devices; the last one wins
    devices.mkdir()
    tegrastats = json.dumps([sys.executable, str(ROOT / "tests" / "fakes" / "tegrastats"), "--watts", "6.0"])
    (devices / "jetson.yaml").write_text(
        "kind: local\ncapabilities: {runtimes: [onnxruntime]}\n"
        f"power: [{{meter: tegrastats, interval_ms: 20, command: {tegrastats}}}]\n"
        "settings: {min_iterations: 50, warmup: 2}\n")
    out = tmp_path / "bench.json"
    _ok(run_suite(tmp_path, models_dir(tmp_path / "models"), "--devices-dir", str(devices),
                  f"--benchmark-json={out}", devices=("jetson",)))
    [bench] = json.loads(out.read_text())["benchmarks"]
    energy = bench["extra_info"]["energy"]
    assert energy["source"] == "tegrastats" and energy["avg_power_w"] == pytest.approx(6.0)
    assert energy["energy_per_inference_j"] > 0
