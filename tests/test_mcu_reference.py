"""The DUT client against peers that speak as the MLPerf Tiny reference code does
(tests/serial_peers.py: ReferenceDut, InterfaceBoardDut, written from mlcommons/tiny's
benchmark/api, the reference submissions and the interface board's firmware)."""
from __future__ import annotations

import pytest
import serial

from harness.mcu.dut import DutClient, DutError, WRAP_US
from serial_peers import InterfaceBoardDut, ReferenceDut

SHORT = 2.0


@pytest.fixture
def peer():
    made = []

    def make(cls=ReferenceDut, **kw):
        dut = cls(**kw)
        made.append(dut)
        return dut
    yield make
    for dut in made:
        dut.close()


def connect(dut, boot=True, **kw) -> DutClient:
    port = serial.serial_for_url(dut.url, timeout=SHORT, baudrate=115200, do_not_open=True)
    port.reset_input_buffer = lambda: None  # keep the boot banner pyserial's open() would drop
    port.open()
    del port.reset_input_buffer
    client = DutClient(port, timeout_s=SHORT, **{"strict": False, **kw})
    if boot:
        client.wait_boot()
    return client


def test_the_size_check_message_is_a_clear_error_not_a_measurement(peer):
    client = connect(peer(input_size=64))
    client.load(b"\x01")
    with pytest.raises(DutError, match=r"'infer 1 0'.*expects 64 input elements and got 1.*serial\.model"):
        client.infer(1, 0)
    client.load(bytes(range(64)))
    window = client.infer(5, 0)
    assert window.elapsed_us == 500 and window.results == [0.194, 0.173]  # the trailing comma skipped


def test_an_oversized_load_names_the_firmware_buffer(peer):
    client = connect(peer(max_db=40))
    with pytest.raises(DutError, match=r"'db load 64'.*buffer holds 40 bytes, 64 were sent"):
        client.load(bytes(64))


def test_unprefixed_lines_are_logged_when_tolerant_and_refused_when_strict(peer):
    client = connect(peer())
    assert client.command("help") == []            # the reference help text: no m- lines
    assert "help: ULPMark for tinyML Firmware V0.0.1" in client.log
    assert all(line.startswith("help: ") for line in client.log)
    strict = connect(peer(), strict=True)
    with pytest.raises(DutError, match=r"'help'.*must be printable ASCII starting m- or e-"):
        strict.command("help")


class ScriptedPort:
    """A pyserial-like port that answers with fixed bytes (no peer thread)."""
    timeout, in_waiting = 1.0, 0

    def __init__(self, *chunks):
        self.chunks = iter(chunks)

    def write(self, data):
        pass

    def read(self, n):
        return next(self.chunks, b"")


@pytest.mark.parametrize("strict", [False, True])
def test_lf_only_lines_are_read_when_tolerant_and_named_when_strict(strict):
    client = DutClient(ScriptedPort(b"m-name-dut-[lf]\n", b"m-ready\n"), timeout_s=1.0, strict=strict)
    if strict:
        with pytest.raises(DutError, match=r"'name': a line ending LF only"):
            client.name()
    else:
        assert client.name() == "lf"


def test_the_size_check_is_named_in_strict_mode_too_and_the_link_stays_in_step(peer):
    client = connect(peer(input_size=4), strict=True)
    client.load(b"\x00\x01")
    with pytest.raises(DutError, match=r"expects 4 input elements and got 2"):
        client.infer(1, 0)
    assert client.name() == "reference"  # the rest of that reply was drained, not taken for this one


def test_through_the_interface_board_the_passthrough_acknowledgement_is_read(peer):
    dut = peer(InterfaceBoardDut, input_size=30)
    client = connect(dut, boot=False, interface_board=True, chunk_bytes=26)
    assert client.name() == "reference"
    assert client.profile()["model"] == "vww01"
    client.load(bytes(range(30)))
    assert dut.loaded == [bytes(range(30))]
    assert [len(c.split()[-1]) for c in dut.received if c.startswith("dut db ") and "load" not in c] == [52, 8]
    assert client.infer(4, 0).elapsed_us == 400
    assert all(c.startswith("dut ") for c in dut.received) and client.log == []


def test_a_board_that_does_not_acknowledge_the_passthrough_is_refused(peer):
    dut = peer(InterfaceBoardDut)
    client = connect(dut, boot=False, interface_board=True)
    dut.dispatch = lambda text: dut.out("m-ready\r\n[dut]: m-name-dut-[x]\r\n[dut]: m-ready\r\n")
    with pytest.raises(DutError, match=r"did not acknowledge with m-dut-passthrough\(name\); received: m-ready"):
        client.name()


def test_energy_mode_has_no_lap_lines(peer):
    edges = []
    dut = peer(energy=True, input_size=8, on_edge=lambda after_us: edges.append(after_us))
    client = connect(dut, energy_mode=True)
    assert client.boot_mode == "energy" and len(edges) == 1   # th_timestamp at init
    client.load(bytes(8))
    window = client.infer(3, 0)
    assert window.elapsed_us is None and window.t0_us is None and window.results == [0.194, 0.173]
    assert edges[1:] == [None, 300]                            # the two edges of the window
    performance = connect(peer(energy=True, input_size=8))
    performance.load(bytes(8))
    with pytest.raises(DutError, match=r"no m-lap-us timestamps.*booted in energy mode: set serial.mode: energy"):
        performance.infer(1, 0)


def test_a_performance_firmware_in_energy_mode_is_named(peer):
    client = connect(peer(input_size=8), energy_mode=True)
    client.load(bytes(8))
    with pytest.raises(DutError, match=r"m-lap-us in energy mode"):
        client.infer(1, 0)


def test_the_32_bit_microsecond_counter_wraps(peer):
    client = connect(peer(input_size=8, clock_us=WRAP_US - 250))
    client.load(bytes(8))
    window = client.infer(5, 0)
    assert window.t1_us < window.t0_us and window.elapsed_us == 500


def test_a_dropped_digit_fails_against_the_host_clock_with_both_numbers(peer):
    client = connect(peer(input_size=8, fault="drop_digit"), clock_check=True, baud=115200)
    client.load(bytes(8))
    # t1 5000500 arrives as 500500: before t0, so taken as a wrap: 4294 s of DUT time
    with pytest.raises(DutError, match=r"DUT timed the window at 429\d{4}\.\d+ ms but the host saw [\d.]+ ms"):
        client.infer(5, 0)


def test_a_dut_window_far_shorter_than_the_host_saw_is_refused():
    ticks = iter([0.0, 2.0])  # an injected host clock: 2 s around the window
    lines = iter([b"m-warmup-start-0\r\n", b"m-warmup-done\r\n", b"m-infer-start-5\r\n", b"m-lap-us-1000\r\n",
                  b"m-lap-us-1500\r\n", b"m-infer-done\r\n", b"m-results-[1.000]\r\n", b"m-ready\r\n"])

    client = DutClient(ScriptedPort(*lines), timeout_s=1.0, clock_check=True, baud=115200, clock=lambda: next(ticks))
    with pytest.raises(DutError, match=r"at 0\.500 ms but the host saw 2000\.000 ms around it \(\d+\.\d+ ms of it on "
                                       r"the wire at 115200 baud\)"):
        client.infer(5, 0)


def test_a_lost_port_names_the_command_and_the_bytes_received(peer):
    client = connect(peer(input_size=8, fault="lose_port"))
    client.load(bytes(8))
    with pytest.raises(DutError, match=r"'infer 2 0': the serial port failed: .*received: .*m-lap-us-5000000"
                                       r" \| b'm-lap-us-12'"):
        client.infer(2, 0)


def test_a_stalled_window_times_out_naming_what_came(peer):
    client = connect(peer(input_size=8, fault="stall"), us_per_inference_budget=0)
    client.load(bytes(8))
    with pytest.raises(DutError, match=r"'infer 2 0'.*silent.*received: m-warmup-start-0"):
        client.infer(2, 0)
