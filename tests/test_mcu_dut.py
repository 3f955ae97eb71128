"""The DUT protocol client against scripted peers: a well-behaved MLPerf Tiny DUT, and
peers that send garbage, drop bytes, stall or answer ``e-[...]``. Every case ends in a
DutError that names the command, never a hang (all waits are bounded by timeout_s)."""
from __future__ import annotations

import pytest

from harness.mcu.dut import DutClient, DutError
from serial_peers import SHORT, FakeDut


@pytest.fixture
def fake():
    made = []

    def make(fault=None, transport="socket"):
        dut = FakeDut(fault, transport)
        made.append(dut)
        return dut
    yield make
    for dut in made:
        dut.close()


@pytest.mark.parametrize("transport", ["socket", "pty"])
def test_a_compliant_dut_is_read_completely(fake, transport):
    dut = fake(transport=transport)
    client = dut.client()
    assert "m-init-done" in client.wait_boot()
    assert client.name() == "fake"
    assert client.profile() == {"profile": "ULPMark for tinyML Firmware V0.0.1", "model": "ic01"}
    assert client.timestamp() == 1234
    payload = bytes(range(70))
    client.load(payload)
    assert dut.buffer == payload
    # chunked as MLPerf Tiny does: 31 bytes = 62 hex digits per db command
    assert [len(c) for c in dut.received if c.startswith("db ") and "load" not in c] == [65, 65, 19]
    window = client.infer(5, 1)
    assert (window.n, window.warmup, window.elapsed_us) == (5, 1, 50)
    assert window.results == [0.0, 0.996, 0.004]
    assert client.results() == [0.0, 0.996, 0.004]


def test_garbage_is_an_error_naming_the_command(fake):
    client = fake("garbage").client()
    client.wait_boot()
    with pytest.raises(DutError, match=r"'profile'.*garbage"):
        client.profile()


def test_a_dropped_byte_is_an_error_not_a_wrong_value(fake):
    client = fake("drop").client()
    client.wait_boot()
    with pytest.raises(DutError, match=r"'name'") as err:
        client.name()
    assert err.value.received  # what came back is in the message


def test_a_silent_board_times_out(fake):
    client = fake("stall").client()
    client.wait_boot()
    with pytest.raises(DutError, match=r"'infer 1 0'.*silent"):
        DutClient(client.port, timeout_s=SHORT, us_per_inference_budget=0).infer(1, 0)


def test_an_error_reply_is_raised_with_its_text(fake):
    client = fake("error").client()
    client.wait_boot()
    with pytest.raises(DutError, match=r"'timestamp'.*e-\[Unknown command: timestamp\]"):
        client.timestamp()
    assert client.optional("mem") is None  # an unknown extension is not fatal


def test_a_hex_digit_error_names_the_chunk(fake):
    client = fake("hex").client()
    client.wait_boot()
    with pytest.raises(DutError, match=r"'db 000102.*Insufficent number of hex digits"):
        client.load(b"\x00\x01\x02")


def test_a_truncated_infer_reply_is_refused(fake):
    client = fake("short").client()
    client.wait_boot()
    with pytest.raises(DutError, match=r"'infer 2 0'.*expected 'm-lap-us.*\(reply 5 of 7\) before m-ready"):
        client.infer(2, 0)


def test_extra_informational_lines_are_tolerated_but_not_a_broken_order(fake):
    client = fake("chatty").client()
    client.wait_boot()
    assert client.infer(3, 0).elapsed_us == 30
    client = fake("twice").client()
    client.wait_boot()
    with pytest.raises(DutError, match=r"'m-lap-us-99' out of the MLPerf Tiny order"):
        client.infer(3, 0)


def test_commands_never_exceed_the_dut_buffer():
    with pytest.raises(ValueError):
        DutClient(None, chunk_bytes=39)


def test_sync_skips_a_boot_banner_but_nothing_else(fake):
    dut = fake()
    client = dut.client()  # the banner is waiting, unread
    assert client.sync() == "fake"
    assert client.timestamp() == 1234  # and the link is in step afterwards
    garbage = fake("garbage").client()
    garbage.wait_boot()
    with pytest.raises(DutError):
        garbage.profile()


def test_resync_gets_back_in_step_after_a_failed_exchange(fake):
    dut = fake("garbage")
    client = dut.client()
    client.wait_boot()
    with pytest.raises(DutError):
        client.profile()
    dut.fault = None
    assert client.resync() == "fake"
    assert client.timestamp() == 1234


def test_through_an_interface_board_commands_are_relayed(fake):
    dut = fake("interface")
    port_client = dut.client()
    client = DutClient(port_client.port, timeout_s=SHORT, chunk_bytes=26, interface_board=True)
    assert client.name() == "fake"
    client.load(bytes(range(30)))
    assert dut.buffer == bytes(range(30))
    # 26 bytes (52 hex digits) per chunk through the interface board
    assert [len(c.split()[-1]) for c in dut.received if c.startswith("dut db ") and "load" not in c] == [52, 8]
    assert client.infer(4, 0).elapsed_us == 40
    assert dut.received[0] == "dut name"
    direct = DutClient(port_client.port, timeout_s=SHORT)  # forgetting the interface board
    with pytest.raises(DutError, match=r"'name'.*Unknown command: name"):
        direct.name()
