"""The engine's outputs are bit-identical to LiteRT's builtin kernels on every zoo int8
model: over all held-out digits and random inputs, compiled for this host (fast, needs a
C compiler), and over all held-out digits on the firmware in QEMU (needs the ARM
toolchain and qemu-system-arm, which CI installs)."""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from harness.mcu import build as fwbuild  # noqa: E402
from harness.mcu import qemu  # noqa: E402
from harness.mcu.dut import DutClient  # noqa: E402
from harness.mcu.export import export  # noqa: E402
from litert_reference import held_out_int8, litert_outputs  # noqa: E402
from paths import ROOT  # noqa: E402

ZOO_INT8 = sorted((ROOT / "models").glob("*_int8.tflite"))
SHIM = """
#include "engine.h"
#include "model.h"
int arena_bytes(void) { return ARENA_BYTES; }
unsigned input_offset(void) { return eng_model.input; }
unsigned output_offset(void) { return eng_model.output; }
void run(int8_t *arena) { eng_run(&eng_model, arena); }
"""


@pytest.fixture(scope="module")
def host_cc():
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler (cc) to build the engine for this machine")
    return cc


def host_engine_outputs(model: Path, x: np.ndarray, cc: str, workdir: Path) -> np.ndarray:
    """The engine compiled for this host, run on each input of ``x``."""
    exported = export(model)
    exported.write(workdir)
    (workdir / "shim.c").write_text(SHIM)
    lib = workdir / "engine.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-ffp-contract=off", f"-I{ROOT / 'firmware/src'}",
                    f"-I{workdir}", str(ROOT / "firmware/src/engine.c"), str(workdir / "model.c"),
                    str(workdir / "shim.c"), "-lm", "-o", str(lib)], check=True, timeout=120)
    engine = ctypes.CDLL(str(lib))
    n_in, n_out = exported.input["bytes"], exported.output["bytes"]
    got = []
    for sample in x:
        arena = np.zeros(engine.arena_bytes(), np.int8)
        arena[engine.input_offset():engine.input_offset() + n_in] = sample.reshape(-1)
        engine.run(arena.ctypes.data_as(ctypes.c_void_p))
        got.append(arena[engine.output_offset():engine.output_offset() + n_out].copy())
    return np.array(got)


def assert_same(got: np.ndarray, expected: np.ndarray, what: str):
    mismatched = np.flatnonzero((got.reshape(len(got), -1) != expected.reshape(len(expected), -1)).any(axis=1))
    assert mismatched.size == 0, f"{mismatched.size} of {len(got)} {what} differ, first at {mismatched[:5]}"


@pytest.mark.parametrize("model", ZOO_INT8, ids=lambda p: p.name)
def test_engine_on_the_host_is_bit_exact(model, host_cc, tmp_path):
    exported = export(model)
    x = np.concatenate([held_out_int8(exported),
                        np.random.default_rng(0).integers(-128, 128, (500, 64)).astype(np.int8)])
    assert_same(host_engine_outputs(model, x, host_cc, tmp_path), litert_outputs(model, x), "inputs")


# Operator configurations the zoo does not use (tests/tflite_int8.py builds the models).
CHAINS = {
    "strided-same-dilated": ([1, 9, 9, 2], [
        ("conv", dict(out=4, k=3, stride=2, padding="SAME", act="RELU6")),
        ("dwconv", dict(mult=2, k=3, dilation=2, padding="SAME", act="RELU")),
        ("avgpool", dict(k=3, stride=2, padding="SAME")),          # partial windows at the edges
        ("maxpool", dict(k=2, stride=1, padding="VALID")),
        ("reshape", dict(shape=[1, 32])),
        ("fc", dict(out=7, act="RELU")),
        ("softmax", dict(beta=0.5))]),
    "valid-per-tensor-batched-fc": ([1, 10, 7, 3], [
        ("conv", dict(out=5, k=2, padding="VALID", per_channel=False)),
        ("dwconv", dict(k=3, stride=2, padding="VALID", act="RELU6")),
        ("reshape", dict(shape=[2, 20])),
        ("fc", dict(out=6, per_channel=True)),
        ("softmax", {})]),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_engine_is_bit_exact_on_other_operator_configurations(name, host_cc, tmp_path):
    from tflite_int8 import chain

    shape, layers = CHAINS[name]
    model = chain(tmp_path / f"{name}.tflite", shape, layers)
    x = np.random.default_rng(1).integers(-128, 128, (300, *shape)).astype(np.int8)
    assert_same(host_engine_outputs(model, x, host_cc, tmp_path), litert_outputs(model, x), "inputs")


def firmware_reasons() -> str | None:
    return fwbuild.toolchain_missing() or qemu.qemu_missing()


@pytest.mark.skipif(firmware_reasons() is not None, reason=f"firmware in QEMU: {firmware_reasons()}")
@pytest.mark.parametrize("machine, cpu", [("mps2-an385", "cortex-m3"), ("mps2-an386", "cortex-m4")])
@pytest.mark.parametrize("model", ZOO_INT8, ids=lambda p: p.name)
def test_firmware_in_qemu_is_bit_exact_on_all_held_out_digits(model, machine, cpu, tmp_path_factory):
    exported = export(model)
    firmware = fwbuild.build(exported, tmp_path_factory.mktemp("fw"), cpu=cpu)
    x = held_out_int8(exported)
    expected = litert_outputs(model, x)
    board = qemu.Qemu(firmware.elf, machine=machine)
    try:
        board.start()
        port = board.connect()
        dut = DutClient(port, timeout_s=10)
        dut.wait_boot()
        mismatched = []
        for i, sample in enumerate(x):
            dut.load(sample.tobytes())
            dut.infer(1, 0)
            (line,) = dut.command("qresults")
            got = np.array([int(v) for v in line[len("m-qresults-["):-1].split(",")])
            if not np.array_equal(got, expected[i]):
                mismatched.append(i)
        port.close()
    finally:
        board.stop()
    assert not mismatched, f"{len(mismatched)} of {len(x)} digits differ, first at {mismatched[:5]}"
