"""The DUT protocol client against scripted peers: a well-behaved MLPerf Tiny DUT, and
peers that send garbage, drop bytes, stall or answer ``e-[...]``. Every case ends in a
DutError that names the command, never a hang (all waits are bounded by timeout_s)."""
from __future__ import annotations

import os
import socket
import threading

import pytest
import serial

from harness.mcu.dut import DutClient, DutError

SHORT = 1.5  # seconds a silent peer is waited for (generous: CI machines are busy)


class FakeDut:
    """A minimal MLPerf Tiny DUT in a thread, on a TCP socket or a pty; ``fault`` breaks it."""

    def __init__(self, fault=None, transport="socket"):
        self.fault, self.buffer, self.expected = fault, bytearray(), 0
        self.received: list[str] = []
        self._stop = threading.Event()
        self._opened = threading.Event()  # the banner goes out once the host's port is open
        if transport == "socket":
            self._server = socket.create_server(("127.0.0.1", 0))
            self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
            self._thread = threading.Thread(target=self._serve_socket, daemon=True)
        else:
            self._server = None
            self._master, slave = os.openpty()
            self.url = os.ttyname(slave)
            self._slave = slave
            self._thread = threading.Thread(target=self._serve_fd, daemon=True)
        self._thread.start()

    # transports
    def _serve_socket(self):
        # Accepts again after a disconnect: a host that reopens the port (after flashing)
        # meets the board again, banner first, as after a reset.
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(0.05)
            self._loop(lambda: conn.recv(256), conn.sendall)
            conn.close()

    def _serve_fd(self):
        import select

        def recv():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                raise socket.timeout
            return os.read(self._master, 256)
        self._loop(recv, lambda b: os.write(self._master, b))

    def _loop(self, recv, send):
        pending = b""
        self._send = send
        if not self._opened.wait(5):
            return
        if self.fault != "interface":  # an interface board stays quiet until spoken to
            self._lines(["m-timestamp-mode-performance", "m-lap-us-0", "m-init-done"])
        while not self._stop.is_set():
            try:
                data = recv()
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return
            if not data:
                return
            pending += data
            while b"%" in pending:
                cmd, pending = pending.split(b"%", 1)
                self.received.append(cmd.decode())
                self._handle(cmd.decode())

    def _lines(self, lines):
        banner = bool(lines) and lines[0].startswith("m-timestamp-mode")
        if self.fault == "interface" and not banner:
            # an EEMBC interface board: its acknowledgement, then the DUT's lines relayed
            lines = [f"m-dut-passthrough({self._passthrough})", "m-ready"] + \
                ["[dut]: " + line for line in lines + ["m-ready"]]
            self._send(b"".join(line.encode() + b"\r\n" for line in lines))
            return
        data = b"".join(line.encode() + b"\r\n" for line in lines + ["m-ready"])
        if self.fault == "drop" and not banner:
            data = data[:5] + data[6:]  # a byte lost on the wire
        self._send(data)

    def _handle(self, cmd):
        f = self.fault
        if f == "interface":
            if not cmd.startswith("dut "):
                self._send(b"e-[Unknown command: " + cmd.encode() + b"]\r\n")
                return
            cmd = self._passthrough = cmd[len("dut "):]
        if f == "stall" and cmd != "name":
            return
        if f == "garbage" and cmd == "profile":
            self._send(b"\x00\xfe\x13garbage\r\nm-ready\r\n")
            return
        if f == "error":
            self._lines([f"e-[Unknown command: {cmd}]"])
            return
        words = cmd.split()
        if cmd == "name":
            self._lines(["m-name-dut-[fake]"])
        elif cmd == "profile":
            self._lines(["m-profile-[ULPMark for tinyML Firmware V0.0.1]", "m-model-[ic01]"])
        elif cmd == "timestamp":
            self._lines(["m-lap-us-1234"])
        elif words[:2] == ["db", "load"]:
            self.expected, self.buffer = int(words[2]), bytearray()
            self._lines([f"m-[Expecting {self.expected} bytes]"])
        elif words[0] == "db":
            hexdigits = words[1]
            if len(hexdigits) % 2 or f == "hex":
                self._lines(["e-[Insufficent number of hex digits]"])
                return
            self.buffer += bytes.fromhex(hexdigits)
            self._lines(["m-load-done"] if len(self.buffer) >= self.expected else [])
        elif words[0] == "infer":
            n, w = int(words[1]), int(words[2])
            t0 = 1000
            lines = [f"m-warmup-start-{w}", "m-warmup-done", f"m-infer-start-{n}",
                     f"m-lap-us-{t0}", f"m-lap-us-{t0 + 10 * n}", "m-infer-done",
                     "m-results-[0.000,0.996,0.004]"]
            if f == "short":
                lines = lines[:4]
            if f == "chatty":  # other firmware's informational lines are fine
                lines = lines[:3] + ["m-[model in flash]"] + lines[3:]
            if f == "twice":
                lines = lines[:5] + ["m-lap-us-99"] + lines[5:]
            self._lines(lines)
        elif cmd == "results":
            self._lines(["m-results-[0.000,0.996,0.004]"])
        else:
            self._lines([f"e-[Unknown command: {cmd}]"])

    def client(self, **kw) -> DutClient:
        port = serial.serial_for_url(self.url, timeout=SHORT, baudrate=115200)
        self._port = port
        self._opened.set()
        return DutClient(port, timeout_s=SHORT, **kw)

    def close(self):
        self._stop.set()
        port = getattr(self, "_port", None)
        if port is not None:
            port.close()
        self._thread.join(timeout=2)
        if self._server is not None:
            self._server.close()
        else:
            os.close(self._master)
            os.close(self._slave)


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
