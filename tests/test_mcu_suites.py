"""The user's command on the emulated board: `pytest suites/ --device qemu-m3` runs the same
suites as every other device kind, measures, stores and reports (labelled emulated)."""
from __future__ import annotations


import pytest

from harness.mcu import build as fwbuild
from harness.mcu import qemu
from inner_pytest import pytest_argv, run_inner
from paths import ROOT

missing = fwbuild.toolchain_missing() or qemu.qemu_missing()


@pytest.mark.skipif(missing is not None, reason=f"emulated board: {missing}")
def test_the_suites_run_on_the_emulated_board(tmp_path):
    pytest.importorskip("ai_edge_litert")
    proc = run_inner(pytest_argv(
        "suites/", "--device", "qemu-m3", "--variants", "digits-mlp/*",
        "--store", f"sqlite:///{tmp_path / 'store.sqlite'}", "--report", tmp_path / "report.html", "-q", "-rs"),
        timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "qemu-m3 (emulated)  digits-mlp/tflite-int8" in out
    # variants the board cannot run are skipped with the reason, not failed
    assert "qemu-m3 cannot run fp32: it needs one of the runtimes onnxruntime" in out
    assert (tmp_path / "report.html").stat().st_size > 0


@pytest.mark.skipif(missing is not None, reason=f"emulated board: {missing}")
def test_the_suites_run_on_a_prebuilt_elf_in_qemu(tmp_path):
    """Any firmware as a prebuilt DUT: the project's own firmware, built beforehand and
    declared `firmware: prebuilt` with the variant it holds, runs in QEMU from its ELF; its
    numbers go to that variant alone and every other variant is skipped with the reason."""
    pytest.importorskip("ai_edge_litert")
    from harness.mcu.export import export

    firmware = fwbuild.build(export(ROOT / "models" / "digits_mlp_int8.tflite"), tmp_path / "fw build")
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "qemu-prebuilt.yaml").write_text(
        "kind: serial\nemulated: true\ncapabilities: {runtimes: [mcu]}\n"
        "settings: {warmup: 2, min_duration_s: 0.05, min_iterations: 10}\n"
        f"serial: {{firmware: prebuilt, elf: '{firmware.elf}', model: {{variant: digits-mlp/tflite-int8}},\n"
        "         qemu: {machine: mps2-an385}}\n")
    proc = run_inner(pytest_argv(
        "suites/", "--device", "qemu-prebuilt", "--devices-dir", devices,
        "--variants", "digits-*/tflite-int8", "--store", f"sqlite:///{tmp_path / 'store.sqlite'}",
        "--report", "", "-q", "-rs"), timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "qemu-prebuilt (emulated)  digits-mlp/tflite-int8" in out
    table = [line for line in out.splitlines() if line.startswith("qemu-prebuilt ")]
    assert table and all("digits-mlp/tflite-int8" in line for line in table), table  # one variant only
    assert ("qemu-prebuilt runs a prebuilt firmware holding digits-mlp/tflite-int8 (serial.model.variant); "
            "digits-cnn/tflite-int8 is not on it") in out
    assert " failed" not in out and "measured no accuracy" not in out  # accuracy through the prebuilt DUT


@pytest.mark.skipif(missing is not None, reason=f"emulated board: {missing}")
def test_profile_on_the_emulated_board_is_stored_aligned_with_the_firmwares_peak(tmp_path):
    """`--profile` on a serial board: the firmware's per-operator pass after the timed windows,
    aligned to the .tflite's operators and held against the firmware's own kernel-loop roof."""
    pytest.importorskip("ai_edge_litert")
    from harness.store import Store

    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    proc = run_inner(pytest_argv("suites/test_latency.py", "--device", "qemu-m3", "--profile",
                                 "--variants", "digits-mlp/tflite-int8", "--rounds", "1", "--store", store,
                                 "--report", "", "-q"), timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    [m] = [m for m in Store(store).measurements() if m.variant == "tflite-int8"]
    prof = m.profile
    assert prof["source"] == "mcu-firmware" and prof["emulated"] == "guest-time"
    types = [op["op_type"] for op in prof["ops"]]
    assert types[-1] == "SOFTMAX" and set(types[:-1]) == {"FULLY_CONNECTED"}, types
    assert prof["aligned"]["matched"] == len(prof["ops"])           # every operator found in the model
    assert prof["peak"]["source"] == "firmware-kernel-loop" and prof["peak"]["macs_per_s"]["int8"] > 0
    fc = [op for op in prof["roofline"]["ops"] if op["op_type"] == "FULLY_CONNECTED"]
    assert all(0 < op["pct_of_peak"] <= 100 for op in fc)
