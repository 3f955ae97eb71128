"""The firmware build: every board file builds, the cache key follows what is built, and
memory figures come from the ELF."""
from __future__ import annotations


import pytest

pytest.importorskip("ai_edge_litert")

from harness.errors import DeviceError  # noqa: E402
from harness.mcu import build as fwbuild  # noqa: E402
from harness.mcu.export import export  # noqa: E402
from paths import ROOT

missing = fwbuild.toolchain_missing()
pytestmark = pytest.mark.skipif(missing is not None, reason=f"firmware build: {missing}")
BOARDS = sorted(p.stem for p in (ROOT / "firmware" / "boards").glob("*.c"))


@pytest.fixture(scope="module")
def cnn():
    return export(ROOT / "models" / "digits_cnn_int8.tflite")


@pytest.mark.parametrize("board", BOARDS)
def test_every_board_file_builds(board, cnn, tmp_path):
    cpu = "cortex-m3" if board == "mps2-an385" else "cortex-m4"
    firmware = fwbuild.build(cnn, tmp_path, board=board, cpu=cpu)
    assert firmware.elf.is_file() and firmware.bin.is_file() and firmware.hex.is_file()
    sizes = firmware.sizes
    assert sizes["flash_bytes"] == sizes["text"] + sizes["rodata"] + sizes["data"]
    assert sizes["rodata"] >= cnn.const_bytes            # the weights are in flash
    assert sizes["bss"] >= cnn.arena_bytes                # the arena is in RAM


def test_an_unchanged_firmware_is_not_rebuilt(cnn, tmp_path):
    first = fwbuild.build(cnn, tmp_path)
    stamp = first.elf.stat().st_mtime_ns
    again = fwbuild.build(cnn, tmp_path)
    assert again.version == first.version and again.elf.stat().st_mtime_ns == stamp
    other = fwbuild.build(export(ROOT / "models" / "digits_mlp_int8.tflite"), tmp_path)
    assert other.version != first.version
    faster = fwbuild.build(cnn, tmp_path, baud=921600)
    assert faster.version != first.version                # build options are part of the key


def test_an_unknown_board_lists_the_known_ones(cnn, tmp_path):
    with pytest.raises(DeviceError, match=r"no firmware board file 'esp32'.*mps2-an385"):
        fwbuild.build(cnn, tmp_path, board="esp32")
