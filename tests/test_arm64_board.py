"""The ssh kind against an emulated aarch64 board (tests/arm64board.py): the runner, the
probe and the deploy path with aarch64 Python, numpy and runtime wheels, and the user's
suites on it. Root and the cached arm64 root filesystem (.ci/install.d/arm64.sh); marked
`arm64` so a developer can leave them out: `pytest tests/ -m "not arm64"`."""
from __future__ import annotations

import subprocess

import pytest

import arm64board
from harness import variant_build
from harness.devices.ssh import SshDevice, check_board
from harness.store import Store
from inner_pytest import suites
from paths import ROOT

pytestmark = pytest.mark.arm64

QUICK = {"warmup": 2, "min_duration_s": 0.05, "min_iterations": 5}


def test_the_board_is_an_aarch64_with_its_runtimes(ssh_lab, arm64_board, tiny_onnx):
    spec = ssh_lab.spec(arm64_board, top=arm64board.spec_top())
    report = check_board(spec, [tiny_onnx])
    facts = report["facts"]
    assert facts["machine"] == "aarch64", facts
    assert facts["numpy"].startswith("2."), facts
    assert {"onnxruntime", "litert"} <= {r for r, v in facts["runtimes"].items() if "version" in v}, facts
    assert report["variants"][0]["ok"], report
    with SshDevice(spec) as device:
        raw = device.run(dict(model=device.deploy(tiny_onnx), **QUICK))
        info = device.info()
    assert raw["ok"] and raw["runtime"]["name"] == "onnxruntime" and raw["loop"]["iterations"] >= 5
    assert info["machine"] == "aarch64"


def test_the_pinned_cpu_model_reaches_the_runner(ssh_lab, arm64_board):
    """QEMU_CPU=cortex-a76 is set for sshd's sessions (SetEnv), so every runner sees the
    same emulated CPU whatever the host is; QEMU >= 8.1 shows it in /proc/cpuinfo
    (Cortex-A76: ARM's part number 0xd0b) instead of the host's x86 one."""
    spec = ssh_lab.spec(arm64_board, top=arm64board.spec_top())
    with SshDevice(spec) as device:
        rc, out = device.execute(["cat", "/proc/cpuinfo"], timeout_s=120)
    assert rc == 0, out
    assert "CPU part\t: 0xd0b" in out, out[:2000]
    assert "GenuineIntel" not in out and "AuthenticAMD" not in out


def test_the_older_arm64_image(ssh_lab, arm64_old_board, tiny_onnx, tmp_path):
    spec = ssh_lab.spec(arm64_old_board, top=arm64board.spec_top())
    tflite = ROOT / "models" / "digits_mlp_int8.tflite"
    report = check_board(spec, [tiny_onnx, tflite])
    facts = report["facts"]
    assert facts["machine"] == "aarch64"
    assert facts["numpy"].startswith("1.24."), facts  # Debian bookworm's python3-numpy
    assert facts["runtimes"]["tflite_runtime"]["version"] == "2.14.0", facts
    assert "version" not in facts["runtimes"]["onnxruntime"], facts
    assert [v["ok"] for v in report["variants"]] == [False, True], report


def test_suites_run_on_both_arm64_images(ssh_lab, arm64_board, arm64_old_board, tmp_path):
    """A small subset of the user's suites (the MLP's fp32 and int8 variants, short loops):
    every figure the x86 boards give, from an aarch64 board; the older image runs the
    .tflite variant with tflite-runtime and skips the ONNX one with the reason."""
    for board in (arm64_board, arm64_old_board):
        ssh_lab.spec(board, top=arm64board.spec_top())
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    argv = suites(ssh_lab.root / "devices", store, arm64_board.name, arm64_old_board.name,
                  variants=("digits-mlp/fp32", "digits-mlp/tflite-int8"))
    proc = subprocess.run(argv + ["--rounds", "1"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    failures = "\n".join(line for line in out.splitlines() if line.startswith(("FAILED", "ERROR", "E ")))
    assert proc.returncode == 0, failures[:6000] + out[-3000:]
    rows = Store(store).measurements()
    measured = {(m.device, m.variant_id) for m in rows}
    control = f"digits-mlp/{variant_build.CONTROL_NAME}"  # the base's A/A twin, measured beside them
    assert measured - {(arm64_board.name, control)} == {
        (arm64_board.name, "digits-mlp/fp32"), (arm64_board.name, "digits-mlp/tflite-int8"),
        (arm64_old_board.name, "digits-mlp/tflite-int8")}, out[-3000:]
    for m in rows:
        assert m.provenance["device_info"]["machine"] == "aarch64"
        assert m.emulated and m.accuracy is not None and m.host_accuracy is not None
        assert m.latency.p50_ms > 0
    old = [m for m in rows if m.device == arm64_old_board.name]
    assert old[0].provenance["numpy_version"].startswith("1.24.")
    assert f"{arm64_old_board.name} cannot run" in out
