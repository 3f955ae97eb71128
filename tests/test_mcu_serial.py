"""The `serial` device kind: YAML validation, a generic MLPerf Tiny DUT (any compliant
firmware), the flash command template, and the emulated board end to end in QEMU."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DeviceError
from harness.inventory import Inventory, load_device_file
from harness.devices import open_device
from harness.mcu import build as fwbuild
from harness.mcu import qemu

from device_files import assert_refused, write_device
from serial_peers import FakeDut


def test_the_repo_serial_devices_are_valid():
    inventory = Inventory(ROOT / "devices")
    board = inventory.get("qemu-m3")
    assert board.kind == "serial" and board.emulated and board.capabilities.runtimes == ("mcu",)
    assert board.options["qemu"]["icount_shift"] == 0
    real = inventory.get("nucleo-l4r5zi")
    assert real.options["port"] == "/dev/ttyACM0" and "{hex}" in real.options["flash"]


@pytest.mark.parametrize("text, field, words", [
    ("kind: serial\nserial: {baud: 115200}\n", "serial.port", "it is missing"),
    ("kind: serial\nserial: {port: /dev/ttyACM0, baud: fast}\n", "serial.baud", "got 'fast'"),
    ("kind: serial\nserial: {port: /dev/ttyACM0, bauds: 9600}\n", "serial.bauds", "did you mean 'baud'"),
    ("kind: serial\nserial: {port: /dev/ttyACM0, flash: [st-flash, write, '{binary}']}\n",
     "serial.flash[2]", "unknown binary"),
    ("kind: serial\nserial: {qemu: {machine: mps2-an385}, flash: [st-flash, '{bin}']}\n",
     "serial.flash", "starting QEMU is the flash"),
    ("kind: serial\nserial: {qemu: {machine: virt}}\n", "serial.qemu.machine", "one of mps2-an385"),
    ("kind: serial\nserial: {port: /dev/ttyACM0, chunk_bytes: 40}\n", "serial.chunk_bytes", "in 1..38"),
])
def test_bad_serial_yaml_names_file_and_field(tmp_path, text, field, words):
    assert_refused(write_device(tmp_path, "board", text), field, words)


@pytest.fixture
def fake_board(tmp_path):
    duts = []

    def make(extra="", fault=None):
        dut = FakeDut(fault)
        duts.append(dut)
        dut._opened.set()  # the device opens the port itself
        # clock_check off: the fake claims DUT times it does not spend (10 us per inference)
        path = write_device(tmp_path, "fakeboard", f"kind: serial\nserial: {{port: '{dut.url}', timeout_s: 2, "
                                                   f"clock_check: false, cache_dir: '{tmp_path / 'cache'}'{extra}}}\n")
        return dut, open_device(load_device_file(path))
    yield make
    for dut in duts:
        dut.close()


PREBUILT = ", firmware: prebuilt, model: {variant: digits-cnn/tflite-int8}"


def test_any_compliant_firmware_is_measured_with_the_standard_commands(fake_board):
    dut, device = fake_board(PREBUILT)
    device.connect()
    try:
        handle = device.deploy(ROOT / "models" / "digits_cnn_int8.tflite")
        assert handle == "prebuilt:digits-cnn/tflite-int8"
        raw = device.run({"model": handle, "warmup": 2, "min_iterations": 10, "min_duration_s": 0.0})
    finally:
        device.close()
    assert raw["ok"] and raw["emulated"] is False and raw["accuracy"] is None
    assert len(dut.buffer) == 64                          # the declared variant's input size
    assert raw["runtime"]["name"] == "mcu" and raw["model"]["inputs"][0]["shape"] == [1, 8, 8, 1]
    assert raw["latencies_ns"] == [10_000.0] * 5          # the fake's 10 us per inference
    assert raw["loop"]["iterations"] == 10 and raw["loop"]["windows"] == 5
    assert raw["host"]["name"] == "fake" and raw["host"]["model_id"] == "ic01"
    assert raw["memory"]["stack_bytes"] is None          # `mem%` is our extension, absent here
    assert [c for c in dut.received if c.startswith("infer")] == ["infer 1 0", "infer 2 0"] + ["infer 2 0"] * 5


def test_a_board_behind_an_interface_board(fake_board):
    dut, device = fake_board(PREBUILT + ", interface_board: true", fault="interface")
    assert device.spec.options["chunk_bytes"] == 26
    device.connect()
    try:
        handle = device.deploy(ROOT / "models" / "digits_cnn_int8.tflite")
        raw = device.run({"model": handle, "warmup": 0, "min_iterations": 5, "min_duration_s": 0.0})
    finally:
        device.close()
    assert raw["ok"] and raw["latencies_ns"] == [10_000.0] * 5
    assert all(c.startswith("dut ") for c in dut.received)


def test_a_board_that_stops_answering_is_a_device_error(fake_board):
    dut, device = fake_board(PREBUILT)
    device.connect()
    try:
        handle = device.deploy(ROOT / "models" / "digits_cnn_int8.tflite")
        dut.fault = "stall"
        with pytest.raises(DeviceError, match=r"fakeboard: DUT command 'profile': silent"):
            device.run({"model": handle, "warmup": 0, "min_iterations": 5, "min_duration_s": 0.0})
        dut.fault = "garbage"  # answers `profile` with garbage, leaving bytes behind
        with pytest.raises(DeviceError, match=r"'profile': garbage"):
            device.run({"model": handle, "warmup": 0, "min_iterations": 5, "min_duration_s": 0.0})
        dut.fault = None  # the board recovers: so does the next measurement
        assert device.run({"model": handle, "warmup": 0, "min_iterations": 5, "min_duration_s": 0.0})["ok"]
    finally:
        device.close()


toolchain = fwbuild.toolchain_missing()
needs_toolchain = pytest.mark.skipif(toolchain is not None, reason=f"firmware build: {toolchain}")


@needs_toolchain
def test_the_flash_template_runs_with_the_built_files_and_no_shell(fake_board, tmp_path):
    marker = tmp_path / "flashed.txt"
    flasher = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(chr(32).join(sys.argv[2:]))"
    extra = f", flash: ['{sys.executable}', -c, '{flasher}', '{marker}', '{{elf}}', '{{hex}}']"
    dut, device = fake_board(extra)
    device.connect()
    try:
        device.deploy(ROOT / "models" / "digits_mlp_int8.tflite")
    finally:
        device.close()
    elf, hexfile = marker.read_text().split()
    assert elf.endswith("firmware.elf") and Path(elf).is_file() and Path(hexfile).is_file()


@needs_toolchain
def test_a_failing_flash_command_says_so(fake_board):
    dut, device = fake_board(f", flash: ['{sys.executable}', -c, 'raise SystemExit(3)', '{{bin}}']")
    device.connect()
    try:
        with pytest.raises(DeviceError, match="flashing failed with exit code 3"):
            device.deploy(ROOT / "models" / "digits_mlp_int8.tflite")
    finally:
        device.close()


emulator = toolchain or qemu.qemu_missing()


@pytest.mark.skipif(emulator is not None, reason=f"emulated board: {emulator}")
def test_the_emulated_board_end_to_end(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from harness.datasets import load
    from litert_reference import held_out_int8, litert_outputs
    from harness.mcu.export import export

    spec = Inventory(ROOT / "devices").get("qemu-m3")
    spec.options["cache_dir"] = str(tmp_path / "cache")
    test = load("digits", "test")
    np.savez(tmp_path / "digits.npz", x=test.x, y=test.y)
    model = ROOT / "models" / "digits_cnn_int8.tflite"
    device = open_device(spec)
    device.connect()
    try:
        handle = device.deploy(model)
        elf = device.firmware.elf
        built_at = elf.stat().st_mtime_ns
        assert device.deploy(model) == handle and elf.stat().st_mtime_ns == built_at  # cached, not rebuilt
        raw = device.run({"model": handle, "dataset": device.deploy(tmp_path / "digits.npz"),
                          "warmup": 2, "min_iterations": 10, "min_duration_s": 0.0})
        process = device.qemu.proc
    finally:
        device.close()
    assert process.poll() is not None, "QEMU must not outlive the device"
    assert raw["ok"] and raw["emulated"] and raw["runtime"]["name"] == "mcu-int8"
    assert len(raw["latencies_ns"]) == 5 and min(raw["latencies_ns"]) > 0
    expected = litert_outputs(model, held_out_int8(export(model))).argmax(axis=1)
    assert raw["accuracy"]["n"] == len(test.y)
    assert raw["accuracy"]["correct"] == int((expected == test.y).sum())
    memory = raw["memory"]
    assert memory["flash_bytes"] > memory["arena_bytes"] > 0
    assert 0 < memory["stack_bytes"] < memory["stack_region_bytes"]
    assert memory["ram_bytes"] == memory["sections"]["ram_static_bytes"] + memory["stack_bytes"]


@pytest.mark.skipif(emulator is not None, reason=f"emulated board: {emulator}")
def test_a_qemu_that_cannot_start_is_an_error_not_a_hang(tmp_path):
    from harness.mcu.qemu import Qemu

    board = Qemu(tmp_path / "firmware.elf", extra_args=["-no-such-option"])
    with pytest.raises(DeviceError, match=r"QEMU exited with \d+ at start"):
        board.start(timeout_s=20)
    assert board.proc is None


import pytest as _pytest
from paths import ROOT


@_pytest.mark.parametrize("key, value", [
    ("cpu", "cortex-m3; echo INJECTED #"),
    ("board", "mps2-an385 $(shell touch /tmp/x)"),
    ("cross", "arm-none-eabi- ;id"),
])
def test_build_variables_refuse_shell_and_make_syntax(tmp_path, key, value):
    from harness.errors import ConfigError
    from harness.inventory import parse_device

    data = {"kind": "serial", "serial": {"port": "/dev/ttyACM0", key: value}}
    with _pytest.raises(ConfigError, match=rf"serial\.{key}: expected"):
        parse_device(data, tmp_path / "board.yaml", "board")


def test_garbled_integer_replies_name_the_command():
    from harness.devices.serial import reply_ints
    from harness.mcu.dut import DutError

    assert reply_ints("qresults", "m-qresults-[1,-2,3]", "m-qresults-[", "]") == [1, -2, 3]
    with _pytest.raises(DutError, match="'mem'.*m-stack-used-2x8"):
        reply_ints("mem", "m-stack-used-2x8", "m-stack-used-")
    with _pytest.raises(DutError, match="'qresults'"):
        reply_ints("qresults", "m-qresults-[1,2", "m-qresults-[", "]")
