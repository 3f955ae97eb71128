"""The serial kind with any MLPerf Tiny firmware (`firmware: prebuilt`): the YAML says which
variant the firmware holds, energy mode, and serial faults, against peers that speak as the
reference code does (tests/serial_peers.py)."""
from __future__ import annotations


import pytest

pytest.importorskip("ai_edge_litert")  # the declared variant's .tflite gives the input

from harness.devices import open_device  # noqa: E402
from harness.devices.serial import SerialDevice  # noqa: E402
from harness.errors import DeviceError  # noqa: E402
from harness.inventory import load_device_file  # noqa: E402
from device_files import assert_refused, write_device  # noqa: E402
from serial_peers import Lpm01aPeer, ReferenceDut  # noqa: E402
from paths import ROOT

CNN = ROOT / "models" / "digits_cnn_int8.tflite"
FAST = {"warmup": 2, "min_iterations": 5, "min_duration_s": 0.0}


@pytest.mark.parametrize("serial, field, words", [
    ("{port: /dev/ttyACM0, firmware: prebuilt}", "serial.model", "it is missing"),
    ("{port: /dev/ttyACM0, firmware: prebuilt, model: {variant: cnn}}", "serial.model.variant", "model/variant"),
    ("{port: /dev/ttyACM0, model: {variant: a/b}}", "serial.model", "it is for firmware: prebuilt"),
    ("{port: /dev/ttyACM0, elf: fw.elf}", "serial.elf", "firmware: prebuilt"),
    ("{qemu: {machine: mps2-an385}, firmware: prebuilt, model: {variant: a/b}}", "serial.elf", "it is missing"),
    ("{port: /dev/ttyACM0, mode: energy}", "serial.energy_monitor", "no timing"),
    ("{port: /dev/ttyACM0, mode: energy, energy_monitor: {meter: otii}}", "serial.energy_monitor.meter",
     "timestamps GPIO edges"),
    ("{port: /dev/ttyACM0, mode: energy, energy_monitor: {meter: joulescope}}",
     "serial.energy_monitor.timestamp_input", "the input the DUT's timestamp pin is on"),
    ("{port: /dev/ttyACM0, mode: energy, energy_monitor: {meter: lpm01a, port: /dev/x, events: false}}",
     "serial.energy_monitor.events", "true in energy mode"),
    ("{port: /dev/ttyACM0, mode: energy, energy_monitor: {meter: lpm01a, prot: /dev/x}}",
     "serial.energy_monitor.prot", "did you mean 'port'"),
    ("{qemu: {machine: mps2-an385}, mode: energy}", "serial.mode", "no timestamp GPIO"),
])
def test_what_a_prebuilt_or_energy_board_needs_is_checked_at_load(tmp_path, serial, field, words):
    assert_refused(write_device(tmp_path, "refboard", f"kind: serial\nserial: {serial}\n"), field, words)


def test_a_prebuilt_firmware_is_attributed_to_its_variant_only(tmp_path):
    spec = load_device_file(write_device(tmp_path, "refboard", "kind: serial\nserial: {port: /dev/ttyACM0, "
                                         "firmware: prebuilt, model: {variant: digits-cnn/tflite-int8}}\n"))
    assert SerialDevice.unsupported_reason(spec, "digits-cnn/tflite-int8") is None
    assert SerialDevice.unsupported_reason(spec, "digits-mlp/tflite-int8") == (
        "refboard runs a prebuilt firmware holding digits-cnn/tflite-int8 (serial.model.variant); "
        "digits-mlp/tflite-int8 is not on it")
    reference = load_device_file(write_device(tmp_path, "ref2", "kind: serial\nserial: {port: /dev/ttyACM0}\n"))
    assert SerialDevice.unsupported_reason(reference, "digits-mlp/tflite-int8") is None


@pytest.fixture
def board(tmp_path):
    made = []

    def make(extra="", clock_check=False, declared="{variant: digits-cnn/tflite-int8}", **peer):
        dut = ReferenceDut(**peer)
        made.append(dut)
        # clock_check off unless a test turns it on: the peer claims DUT times it does not spend
        path = write_device(tmp_path, "refboard", f"kind: serial\nserial: {{port: '{dut.url}', timeout_s: 3, "
                                                  f"firmware: prebuilt, clock_check: {str(clock_check).lower()}, "
                                                  f"model: {declared}{extra}}}\n")
        device = open_device(load_device_file(path))
        device.connect()
        made.append(device)
        return dut, device
    yield make
    for thing in reversed(made):
        thing.close()


def test_a_reference_firmware_is_measured_with_its_real_input_size(board):
    dut, device = board(input_size=64, us_per_inference=100)
    handle = device.deploy(CNN)
    raw = device.run({"model": handle, **FAST})
    assert raw["ok"] and raw["latencies_ns"] == [100_000.0] * 5       # 100 us per inference, DUT-timed
    assert {len(b) for b in dut.loaded} == {64}
    assert raw["protocol"]["strict"] is False and raw["protocol"]["log"] == [] and raw["warnings"] == []


def test_the_firmware_refusing_the_input_size_is_a_device_error(board):
    dut, device = board(input_size=96)
    handle = device.deploy(CNN)
    with pytest.raises(DeviceError, match=r"^refboard: DUT command 'infer 1 0': the firmware expects 96 input "
                                          r"elements and got 64"):
        device.run({"model": handle, **FAST})


def test_a_dut_model_other_than_declared_is_refused(board):
    dut, device = board(declared="{variant: digits-cnn/tflite-int8, dut_model: ic01}", model="vww01")
    with pytest.raises(DeviceError, match=r"DUT says it holds model 'vww01'.*dut_model says 'ic01'"):
        device.deploy(CNN)


def test_a_dropped_digit_is_caught_against_the_host_clock(board):
    dut, device = board(clock_check=True, input_size=64, fault="drop_digit")
    handle = device.deploy(CNN)
    with pytest.raises(DeviceError, match=r"refboard: DUT command 'infer 1 0': the DUT timed the window at "
                                          r"\d+\.\d+ ms but the host saw \d+\.\d+ ms"):
        device.run({"model": handle, **FAST})


def test_a_lost_port_is_a_device_error_and_the_next_run_reconnects(board):
    dut, device = board(input_size=64, fault="lose_port")
    handle = device.deploy(CNN)
    with pytest.raises(DeviceError, match=r"refboard: DUT command 'infer 1 0': the serial port failed: .*"
                                          r"received: .*b'm-lap-us-12'"):
        device.run({"model": handle, **FAST})
    dut.fault = None  # plugged back in: the board boots again and answers
    assert device.run({"model": handle, **FAST})["ok"]


def test_energy_mode_times_windows_from_the_monitor_edges(board):
    with Lpm01aPeer(watts=0.010, freq=1000, event_after_s=None) as lpm:
        extra = (", mode: energy, idle_s: 0, energy_monitor: {meter: lpm01a, port: '%s', baudrate: 115200, "
                 "power_on: false}" % lpm.path)
        dut, device = board(extra, input_size=64, energy=True, us_per_inference=20_000, on_edge=lpm.edge)
        handle = device.deploy(CNN)
        raw = device.run({"model": handle, "warmup": 0, "min_iterations": 5, "min_duration_s": 0.0})
    assert raw["loop"]["clock"].startswith("energy monitor")
    # 20 samples at 1 kHz per window (edges at offset + k / f on the unix clock: ~0.2 us of float rounding)
    assert raw["latencies_ns"] == pytest.approx([20e6] * 5, rel=1e-4)
    energy = raw["energy"]
    assert energy["energy_per_inference_j"] == pytest.approx(0.010 * 0.020, rel=1e-3)
    assert len(energy["windows_energy_per_inference_j"]) == 5
    assert "start" in lpm.commands and "eventsrc d7 fal" in lpm.commands


def test_energy_mode_without_edges_names_the_wiring(board):
    with Lpm01aPeer(event_after_s=None) as lpm:
        extra = (", mode: energy, idle_s: 0, energy_monitor: {meter: lpm01a, port: '%s', baudrate: 115200, "
                 "power_on: false}" % lpm.path)
        dut, device = board(extra, input_size=64, energy=True)  # the pin is not wired: no edges
        handle = device.deploy(CNN)
        with pytest.raises(DeviceError, match=r"saw 0 timestamp edge\(s\) during 'infer 1 0', expected 2.*D7"):
            device.run({"model": handle, "warmup": 0, "min_iterations": 5, "min_duration_s": 0.0})


def test_a_joulescope_reports_the_timestamp_input_s_falling_edges():
    """The Joulescope meter with timestamp_input: the GPI rides in current_lsb; its falling
    edges are events in the LPM01A's format (a fake of the joulescope 1.x device API)."""
    from types import SimpleNamespace

    import numpy as np

    from harness.power.joulescope import JoulescopeMeter

    level = np.ones(1000, dtype=np.uint8)
    level[100:150] = 0      # the DUT pulls its timestamp pin low: window start
    level[600:601] = 0      # and again: window end
    signals = {"current": np.full(1000, 0.01), "voltage": np.full(1000, 3.0), "current_lsb": level}

    class Device:
        params = {}
        stream_buffer = SimpleNamespace(sample_id_range=(0, 1000), samples_get=lambda a, b, fields: {
            "signals": {f: {"value": signals[f][a:b]} for f in fields}})

        def parameter_set(self, key, value):
            self.params[key] = value

        open = close = start = stop = lambda self: None

    device = Device()
    meter = JoulescopeMeter(JoulescopeMeter.validate({"meter": "joulescope", "timestamp_input": "gpi0"}, "x", "m"))
    meter.js = SimpleNamespace(scan_require_one=lambda config: device)
    meter.start()
    trace = meter.stop()
    assert device.params["current_lsb"] == "gpi0"
    times = [e["t"] - trace.t[0] for e in trace.extra["events"]]
    assert times == pytest.approx([0.100, 0.600]) and {e["edge"] for e in trace.extra["events"]} == {"fal"}


def test_the_prebuilt_elf_is_found_beside_the_yaml_or_named_when_missing(tmp_path):
    path = write_device(tmp_path, "refboard", "kind: serial\nserial: {firmware: prebuilt, "
                                              "elf: 'fw dir/firmware.elf', model: {variant: digits-cnn/tflite-int8}, "
                                              "qemu: {machine: mps2-an385}}\n")
    spec = load_device_file(path)
    assert spec.options["elf"] == str(tmp_path.resolve() / "fw dir" / "firmware.elf")
    device = open_device(spec)
    device.connect()
    try:
        with pytest.raises(DeviceError, match=r"refboard: serial\.elf: no such file .*fw dir/firmware\.elf"):
            device.deploy(CNN)
    finally:
        device.close()
