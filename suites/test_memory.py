"""Memory on the device: peak RSS on Linux boards, flash and RAM on microcontrollers."""
import pytest


def test_memory(measure, device_spec):
    m = measure()
    if m.memory.flash_bytes is not None:  # a microcontroller: the model is in flash
        assert m.memory.flash_bytes >= m.size_bytes // 4, "the firmware cannot hold the model's weights"
        assert m.memory.ram_bytes and m.memory.ram_bytes > 0
        return
    if m.memory.peak_rss_kb is None:
        pytest.skip(f"{device_spec.name} reports no resident-set figure")
    board_kb = (m.provenance.get("board") or {}).get("mem_total_kb")
    assert m.memory.peak_rss_kb > 0
    if board_kb:
        assert m.memory.peak_rss_kb < board_kb, "peak RSS above the board's physical memory"
