"""Per-operator profiles and the compute peak from the firmware (issue 20, MCU part): the
reply parsed into the profile document, firmware without the commands ("not offered"),
and the project's firmware in QEMU, timing each operator of the zoo's int8 models."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import DeviceError
from harness.mcu import build as fwbuild
from harness.mcu import profile as mcu_profile
from harness.mcu import qemu
from harness.mcu.dut import DutError
from harness.mcu.profile import Layer

from paths import ROOT
MODELS = [ROOT / "models" / "digits_cnn_int8.tflite", ROOT / "models" / "digits_mlp_int8.tflite"]
# The operators' times sum to the whole inference within this fraction: what is not in an
# operator is eng_run's loop and call per operator and the clock's 40-instruction tick
# (measured in QEMU: 0.01-0.04% of the CNN, 0.03-0.4% of the MLP, 20-100 runs); an
# operator timed with the wrong span is far outside it.
COVERAGE_TOLERANCE = 0.02

LAYERS = [Layer("conv", "CONV_2D", "int8[1,8,8,1] -> int8[1,8,8,8]"), Layer("fc", "FULLY_CONNECTED", "int8[1,64] -> int8[1,10]")]
REPLY = ["m-opprof-start-4", "m-opprof-hz-1000000", "m-opprof-probe-8", "m-opprof-total-1000",
         "m-opprof-op-0-CONV_2D-808", "m-opprof-op-1-FULLY_CONNECTED-200", "m-opprof-pass-2010",
         "m-opprof-done"]


def test_the_reply_becomes_the_profile_document():
    doc = mcu_profile.parse_profile("opprof 4", REPLY, 4, LAYERS, emulated="guest-time")
    # cycles over 4 inferences at 1 MHz, each less the 8 cycles of 4 clock reads (the probe)
    assert doc["ops"] == [
        {"name": "conv", "op_type": "CONV_2D", "time_us": 200.0, "provider": None, "shapes": "int8[1,8,8,1] -> int8[1,8,8,8]"},
        {"name": "fc", "op_type": "FULLY_CONNECTED", "time_us": 48.0, "provider": None, "shapes": "int8[1,64] -> int8[1,10]"}]
    assert doc["source"] == "mcu-firmware" and doc["unit"] == "us" and doc["runs"] == 4
    assert doc["total_us"] == 250.0 and doc["coverage"] == pytest.approx(248 / 250)
    assert doc["overhead"] == pytest.approx(2010 / 2 / 1000 - 1)   # a profiled inference vs a plain one
    assert doc["emulated"] == "guest-time"


@pytest.mark.parametrize("lines, words", [
    ([x for x in REPLY if not x.startswith("m-opprof-probe")], "m-opprof-probe-<n>"),
    ([x for x in REPLY if x != "m-opprof-done"], "m-opprof-done"),
    ([x.replace("CONV_2D", "DEPTHWISE_CONV_2D") for x in REPLY], "the board holds another model"),
    ([x for x in REPLY if "FULLY" not in x], "the board holds another model"),
    ([x.replace("op-1-", "op-2-") for x in REPLY], "out of order"),
    ([x.replace("start-4", "start-5") for x in REPLY], "ran 5 inferences, 4 were asked"),
    (REPLY[:3] + ["m-opprof-total-1x00"] + REPLY[4:], "malformed reply line 'm-opprof-total-1x00'"),
    (REPLY + ["m-opprof-hz-2"], "given twice"),
])
def test_a_bad_reply_is_an_error_naming_the_command(lines, words):
    with pytest.raises(DutError, match="'opprof 4'") as info:
        mcu_profile.parse_profile("opprof 4", lines, 4, LAYERS)
    assert words in str(info.value)


def test_the_peak_reply():
    peak = mcu_profile.parse_peak("peak 10", ["m-peak-macs-2560", "m-peak-cycles-640", "m-peak-hz-1000"], 10)
    assert peak["macs_per_s"] == 4000.0 and peak["source"] == "firmware-kernel-loop"
    with pytest.raises(DutError, match="m-peak-hz"):
        mcu_profile.parse_peak("peak 10", ["m-peak-macs-2560", "m-peak-cycles-640"], 10)


def test_the_layers_are_the_models_operators_in_order():
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    model = MODELS[0]
    interp = Interpreter(model_path=str(model))
    tensors = {d["index"]: d for d in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # LiteRT's own view of the graph, to hold ours against
    layers = mcu_profile.layers(model)
    assert [layer.op_type for layer in layers] == [op["op_name"] for op in ops]
    assert [layer.name for layer in layers] == [tensors[op["outputs"][0]]["name"] for op in ops]
    assert layers[0].shapes == "int8[1,8,8,1] -> int8[1,8,8,8]"


# ---------------------------------------------------------------- firmware without the commands


@pytest.fixture
def reference_board(tmp_path):
    """The MLPerf Tiny reference firmware's behaviour (tests/serial_peers.py) as a prebuilt board."""
    pytest.importorskip("ai_edge_litert")
    from harness.devices import open_device
    from harness.inventory import load_device_file
    from serial_peers import ReferenceDut

    dut = ReferenceDut()
    path = tmp_path / "refboard.yaml"
    path.write_text(f"kind: serial\nserial: {{port: '{dut.url}', timeout_s: 3, firmware: prebuilt, "
                    "clock_check: false, model: {variant: digits-cnn/tflite-int8}}\n")
    device = open_device(load_device_file(path))
    device.connect()
    try:
        yield dut, device
    finally:
        device.close()
        dut.close()


def test_a_firmware_without_the_commands_offers_no_profile(reference_board):
    dut, device = reference_board
    handle = device.deploy(MODELS[0])
    profile = device.profile({"model": handle, "profile_runs": 3})
    assert profile["offered"] is False and "'opprof' as an unknown command" in profile["reason"]
    peak = device.peak({"model": handle})
    assert peak["offered"] is False and "'peak'" in peak["reason"]
    assert "opprof 3" in dut.received and "peak 1000" in dut.received
    # the board stays in step: a measurement after the refusals works
    assert device.run({"model": handle, "warmup": 0, "min_iterations": 5, "min_duration_s": 0.0})["ok"]


def test_profile_of_a_model_never_deployed_is_refused(reference_board):
    _, device = reference_board
    with pytest.raises(DeviceError, match="was not deployed"):
        device.profile({"model": "mcu:nothing@0"})


# ---------------------------------------------------------------- the firmware in QEMU

emulator = fwbuild.toolchain_missing() or qemu.qemu_missing()


@pytest.fixture(scope="module")
def emulated_profiles(tmp_path_factory):
    """Each zoo int8 model on the emulated Cortex-M3: its profile, peak and a plain run."""
    if emulator is not None:
        pytest.skip(f"emulated board: {emulator}")
    pytest.importorskip("ai_edge_litert")
    from harness.devices import open_device
    from harness.inventory import Inventory

    spec = Inventory(ROOT / "devices").get("qemu-m3")
    spec.options["cache_dir"] = str(tmp_path_factory.mktemp("cache"))
    device = open_device(spec)
    device.connect()
    out = {}
    try:
        for model in MODELS:
            handle = device.deploy(model)
            out[model.name] = {
                "profile": device.profile({"model": handle, "profile_runs": 20}),
                "peak": device.peak({"model": handle}),
                "run": device.run({"model": handle, "warmup": 2, "min_iterations": 10, "min_duration_s": 0.0}),
            }
    finally:
        device.close()
    return out


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.stem)
def test_the_firmware_times_every_operator_of_the_model(emulated_profiles, model):
    from harness.mcu.export import export

    result = emulated_profiles[model.name]
    doc = result["profile"]
    assert doc["source"] == "mcu-firmware" and doc["runs"] == 20 and doc["emulated"] == "guest-time"
    assert [op["op_type"] for op in doc["ops"]] == export(model).ops
    assert [op["name"] for op in doc["ops"]] == [layer.name for layer in mcu_profile.layers(model)]
    assert all(op["time_us"] >= 0 for op in doc["ops"])
    total = sum(op["time_us"] for op in doc["ops"])
    assert abs(total - doc["total_us"]) <= COVERAGE_TOLERANCE * doc["total_us"], (total, doc["total_us"])
    assert doc["coverage"] == pytest.approx(total / doc["total_us"])
    # the whole inference is the one `infer` measures (guest time: deterministic; 1 us is
    # the m-lap-us resolution of the run's windows)
    run_us = sorted(result["run"]["latencies_ns"])[2] / 1e3
    assert abs(doc["total_us"] - run_us) <= 1.0, (doc["total_us"], run_us)
    # two clock reads per profiled inference: a small cost, and never a saving
    assert 0 <= doc["overhead"] < 0.01


def exact_macs(model: Path) -> dict:
    """Operator index -> multiply-accumulates, for the operators whose count needs no
    padding arithmetic: fully connected (inputs x outputs) and 1x1 convolutions."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model))
    shape = {d["index"]: [int(v) for v in d["shape"]] for d in interp.get_tensor_details()}
    out = {}
    for k, op in enumerate(interp._get_ops_details()):
        if op["op_name"] == "FULLY_CONNECTED":
            out_features, in_features = shape[op["inputs"][1]]
            out[k] = in_features * out_features
        elif op["op_name"] == "CONV_2D" and shape[op["inputs"][1]][1:3] == [1, 1]:
            _, h, w, c_out = shape[op["outputs"][0]]
            out[k] = h * w * c_out * shape[op["inputs"][0]][3]
    return out


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.stem)
def test_no_operator_runs_faster_than_the_measured_peak(emulated_profiles, model):
    result = emulated_profiles[model.name]
    peak = result["peak"]
    assert peak["source"] == "firmware-kernel-loop" and peak["emulated"] == "guest-time"
    assert peak["macs"] == 256 * 1000 and peak["macs_per_s"] > 0
    ops = result["profile"]["ops"]
    achieved = [macs / (ops[k]["time_us"] / 1e6) for k, macs in exact_macs(model).items()]
    assert achieved and max(achieved) <= peak["macs_per_s"], (achieved, peak)
    # the loop is the engine's own: a fully connected layer reaches most of it
    assert max(achieved) >= 0.5 * peak["macs_per_s"], (achieved, peak)
