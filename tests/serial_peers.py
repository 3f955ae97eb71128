"""pty and socket peers that speak the real serial protocols (not a test module): the serial
meters' (PtyPeer and its kinds) and an MLPerf Tiny DUT's (FakeDut).

Each peer owns the master side of a pty; the meter opens the slave's path with pyserial.
Every loop polls a stop flag, so nothing outlives the test.
"""
import os
import select
import socket
import threading
import time
import tty

import serial

from harness.mcu.dut import DutClient
from harness.power.lpm01a import encode_value

SHORT = 1.5  # seconds a silent DUT is waited for (generous: CI machines are busy)


def serve_connections(server, stop, handle) -> None:
    """Accept on `server` (a socket with a timeout) until `stop` is set; each connection is
    handed to `handle` (with a short receive timeout) and closed after, so a host that
    reopens the port meets the peer again, as a board after a reset."""
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        except OSError:
            return
        conn.settimeout(0.05)
        try:
            handle(conn)
        finally:
            conn.close()


def read_commands(recv, stop):
    """Each `%`-terminated command a host sends (MLPerf Tiny's framing), as text, until the
    host closes the connection, the transport fails, or `stop` is set."""
    pending = b""
    while not stop.is_set():
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
            command, pending = pending.split(b"%", 1)
            yield command.decode()


class PtyPeer:
    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self._write_lock = threading.Lock()  # the peer's thread and the test's both write

    def run(self):
        """The peer's own thread: answers what the host sends (none by default)."""

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(timeout=5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def write(self, text: str):
        with self._write_lock:
            self._write(text.encode())

    def _write(self, data: bytes):
        while data and not self.stop_flag.is_set():
            try:
                n = os.write(self.master, data)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            except OSError:
                return
            data = data[n:]

    def read_available(self, timeout=0.01) -> bytes:
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError:
            return b""


class StreamPeer(PtyPeer):
    """An MCU printing ``<t_us>,<mV>,<mA>`` at ``rate`` Hz of its own clock; ``power(n)``
    gives W at 5 V for its n-th sample, so a signal's steps sit at known samples whatever
    the host's pace.

    Nothing goes out until ``emit(count)``: the header, then the next ``count`` samples, as
    fast as the port takes them, or with ``realtime`` each no sooner than the wall clock
    says. ``clock_us0`` starts the MCU clock (near 2**32 to test the wrap); with
    ``garbage_every`` every such sample is a damaged line instead.
    """

    def __init__(self, power, rate=500, clock_us0=123_456, garbage_every=0):
        super().__init__()
        self.power, self.rate, self.clock_us0 = power, rate, clock_us0
        self.garbage_every = garbage_every
        self.n = 0  # samples emitted: the MCU clock and the signal both count them

    def emit(self, count, realtime=False) -> int:
        """Write the header and the next ``count`` samples; returns the lines written. With
        ``realtime``, sample k of this call leaves no sooner than k / rate s (wall clock)
        after the call began, as from a real MCU (a busy host only makes it later)."""
        lines = [f"# harness-power-stream v1 rate_hz={self.rate}\n"]
        lines += [self._sample_line() for _ in range(count)]
        if not realtime:
            self.write("".join(lines))
            return len(lines)
        began = time.time()
        self.write(lines[0])
        for k, line in enumerate(lines[1:]):
            due = began + k / self.rate
            while time.time() < due and not self.stop_flag.is_set():  # the wall clock decides
                self.stop_flag.wait(due - time.time())
            self.write(line)
        return len(lines)

    def _sample_line(self) -> str:
        n = self.n
        self.n += 1
        if self.garbage_every and (n + 1) % self.garbage_every == 0:
            return "12a4,5000\n"
        t_us = (self.clock_us0 + round(n * 1e6 / self.rate)) % 2 ** 32
        ma = self.power(n) / 5.0 * 1000.0
        return f"{t_us},5000.0,{ma:.4f}\n"


class Lpm01aPeer(PtyPeer):
    """A PowerShield: acks the configuration commands, streams energy values at 1 kHz
    (ascii_dec, one per line) between ``start`` and ``stop``, reports ``event 7 fal`` at
    ``event_after_s`` (of its sample clock) and answers unknown commands with ``error``.

    In ``realtime`` (the default) samples go out as the wall clock passes; otherwise only
    ``release(count)`` sends them, so a test decides how many an acquisition holds."""

    KNOWN = ("htc", "hrc", "volt", "freq", "acqtime", "output", "format", "trigsrc", "eventsrc",
             "pwr", "start", "stop", "lcd", "trigdelay")

    def __init__(self, watts=0.010, freq=1000, event_after_s=0.1, garbage_every=0, silent=False,
                 second_event_after_s=None, realtime=True):
        super().__init__()
        self.watts, self.freq, self.event_after_s = watts, freq, event_after_s
        self.second_event_after_s = second_event_after_s
        self.garbage_every, self.silent, self.realtime = garbage_every, silent, realtime
        self.commands = []
        self.n = 0                    # samples streamed in this acquisition
        self.written = 0              # of them, already written to the port
        self.acquiring = False
        self._evented = False         # the event_after_s edge went out in this acquisition
        self._edges = []              # sample indices where a DUT edge ("event 7 fal") goes
        self._last_edge = None
        self._edge_lock = threading.Lock()
        self.missed_edges = 0         # edges the peer could not write in time (a starved thread)

    def edge(self, after_us=None, timeout=30.0):
        """The DUT's timestamp pin falls: reported before sample (previous edge + after_us
        at the sampling rate), or the next samples when after_us is None; returns once the
        line is written, so sample counts between edges are exact whatever the host's pace."""
        with self._edge_lock:
            if not self.acquiring:
                return
            if after_us is None or self._last_edge is None:
                at = self.n + 2
            else:
                at = self._last_edge + round(after_us * self.freq / 1e6)
            self._last_edge = at
            self._edges.append(at)
        deadline = time.monotonic() + timeout
        while self.written < at and time.monotonic() < deadline and not self.stop_flag.is_set():
            time.sleep(0.001)
        if self.written < at:
            self.missed_edges += 1

    def release(self, count) -> int:
        """(not realtime) The next ``count`` samples of this acquisition, written at once;
        returns the lines written (samples, damaged ones and events)."""
        assert self.acquiring and not self.realtime, "release() is for a started, released-only peer"
        lines = self._lines_upto(self.n + count)
        self.write("".join(lines))
        self.written = self.n
        return len(lines)

    def _lines_upto(self, last) -> list:
        """The lines of samples n+1 .. last, each edge or event before its sample."""
        lines = []
        while self.n < last:
            with self._edge_lock:
                self.n += 1
                n = self.n
                while self._edges and self._edges[0] <= n:
                    self._edges.pop(0)
                    lines.append("event 7 fal\r\n")
            if self.event_after_s is not None and not self._evented and n / self.freq >= self.event_after_s:
                lines.append("event 7 fal\r\n")
                self._evented = True
            if self.second_event_after_s and n == int(self.second_event_after_s * self.freq):
                lines.append("event 7 fal\r\n")
            if self.garbage_every and n % self.garbage_every == 0:
                lines.append("64#9-0\r\n")
            else:
                lines.append(encode_value(self.watts / self.freq) + "\r\n")
        return lines

    def run(self):
        buf = b""
        acquiring, start = False, 0.0
        while not self.stop_flag.is_set():
            buf += self.read_available(0.002)
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                cmd = raw.decode().strip()
                if not cmd:
                    continue
                self.commands.append(cmd)
                if self.silent:
                    continue
                word = cmd.split()[0]
                if word not in self.KNOWN:
                    self.write(f"PowerShield > error {cmd}\r\nError detail: unknown command\r\n")
                    continue
                if word == "stop" and acquiring:
                    acquiring = self.acquiring = False
                    self.write("PowerShield > ack stop\r\nAcquisition completed\r\n")
                    continue
                if word == "start":  # acquiring before the ack: an edge right after it is seen
                    with self._edge_lock:
                        self._edges, self._last_edge, self.n, self.written = [], None, 0, 0
                        acquiring = self.acquiring = True
                    start, self._evented = time.monotonic(), False
                self.write(f"PowerShield > ack {cmd}\r\n")
            if acquiring and self.realtime:
                # sample n goes out once n / freq s have passed since start
                self.write("".join(self._lines_upto(int((time.monotonic() - start) * self.freq) + 1)))
                self.written = self.n


# ---------------------------------------------------------------- MLPerf Tiny DUT peers
#
# Written from the published reference (mlcommons/tiny): benchmark/api/internally_implemented.cpp
# (ee_serial_command_parser_callback, ee_profile_parse, ee_buffer_parse, ee_infer), the
# reference submissions' submitter_implemented.cpp (th_timestamp, th_load_tensor's size
# check, th_results) and the interface board's InterfaceMenu::Passthrough. What they print,
# byte for byte, is what these peers print: `\r\n` after m- lines, a bare `\n` after the
# size messages, `m-ready` after every command, `e-[Unknown command: X]` otherwise.


class ReferenceDut:
    """The reference DUT firmware's serial behaviour, as a socket:// peer.

    ``input_size``: the model's input bytes (th_load_tensor checks the db size against it);
    ``max_db``: MAX_DB_INPUT_SIZE; ``us_per_inference``: what the timer advances per
    inference; ``clock_us``: the timer's start (near 2**32 to wrap; printed ``%lu`` of a
    32-bit counter); ``energy``: energy mode (th_timestamp is a GPIO edge, no text; each
    edge calls ``on_edge()``); ``results``: th_results' line; ``fault``: None | "drop_digit"
    (one digit of the second m-lap-us lost on the wire) | "lose_port" (the link dies
    mid-reply to infer) | "stall" (infer never answers).
    """

    def __init__(self, input_size=64, max_db=27648, us_per_inference=100, clock_us=5_000_000,
                 energy=False, results="m-results-[0.194,0.173,]", fault=None, name="reference",
                 model="vww01", on_edge=None):
        self.input_size, self.max_db, self.us_per_inference = input_size, max_db, us_per_inference
        self.clock_us, self.energy, self.results, self.fault = clock_us, energy, results, fault
        self.name, self.model, self.on_edge = name, model, on_edge
        self.buffer, self.buff_size, self.buff_pos = bytearray(max_db), 0, 0
        self.received: list = []
        self.loaded: list = []          # each complete db load, as bytes
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # -- what the firmware prints
    def out(self, text: str):
        self._conn.sendall(text.encode())

    def timestamp(self, after_us=None):
        if self.energy:  # th_timestamp: a falling edge on the timestamp GPIO, no text
            if self.on_edge is not None:
                self.on_edge(after_us)
            return
        self.out(f"m-lap-us-{self.clock_us % 2 ** 32}\r\n")

    def boot(self):
        self.out(f"m-timestamp-mode-{'energy' if self.energy else 'performance'}\r\n")
        self.timestamp()
        self.out("m-init-done\r\nm-ready\r\n")

    # -- the command parser (ee_serial_command_parser_callback)
    def handle(self, command: str):
        words = command.split(" ")
        tok = words[0]
        if tok == "name":
            self.out(f"m-name-dut-[{self.name}]\r\n")
        elif tok == "timestamp":
            self.timestamp()
        elif tok == "profile":
            self.out("m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\n")
            self.out(f"m-model-[{self.model}]\r\n")
        elif tok == "db":
            self.db(words[1:])
        elif tok == "infer":
            n = int(words[1]) if len(words) > 1 else 1
            w = int(words[2]) if len(words) > 2 else 10
            if not self.infer(n, w):
                return
        elif tok == "results":
            self.out(self.results + "\r\n")
        elif tok == "help":  # ee_profile_parse's help text: no m- prefix
            self.out("ULPMark for tinyML Firmware V0.0.1\r\n\r\n")
            self.out("help         : Print this information\r\n")
            self.out("name         : Print the name of the device\r\n")
            self.out("infer N [W=0]: Load input, execute N inferences after W warmup loops\r\n")
        else:
            self.out(f"e-[Unknown command: {tok}]\r\n")
        self.out("m-ready\r\n")

    def db(self, args):
        if not args:
            self.out("e-[Command 'db' requires a subcommand]\r\n")
        elif args[0] == "load":
            self.buff_size, self.buff_pos = int(args[1]), 0
            if self.buff_size > self.max_db:
                self.out(f"Supplied buffer size {self.buff_size} exceeds maximum of {self.max_db}\n")
            else:
                self.out(f"m-[Expecting {self.buff_size} bytes]\r\n")
        else:
            digits = args[0]
            if len(digits) % 2:
                self.out("e-[Insufficent number of hex digits]\r\n")
                return
            for i in range(0, len(digits), 2):
                self.buffer[self.buff_pos] = int(digits[i:i + 2], 16)
                self.buff_pos += 1
                if self.buff_pos == self.buff_size:
                    self.loaded.append(bytes(self.buffer[:self.buff_size]))
                    self.out("m-load-done\r\n")
                    return

    def infer(self, n, w) -> bool:
        # th_load_tensor: ee_get_buffer copies min(expected, loaded) bytes, then the check
        loaded = min(self.input_size, self.buff_pos)
        if loaded != self.input_size:
            self.out(f"Input db has {loaded} elemented, expected {self.input_size}\n")
        self.out(f"m-warmup-start-{w}\r\n")
        self.clock_us += w * self.us_per_inference
        self.out("m-warmup-done\r\n")
        self.out(f"m-infer-start-{n}\r\n")
        if self.fault == "stall":
            return False
        first = self.clock_us % 2 ** 32
        self.timestamp()
        self.clock_us += n * self.us_per_inference
        if self.fault == "lose_port":
            self.out("m-lap-us-12")  # cut off mid-line: the cable is pulled
            self._conn.shutdown(socket.SHUT_RDWR)
            self._conn.close()
            return False
        if self.fault == "drop_digit" and not self.energy:
            text = str(self.clock_us % 2 ** 32)
            self.out(f"m-lap-us-{text[:1] + text[2:]}\r\n")  # one digit lost on the wire
        else:
            self.timestamp(after_us=n * self.us_per_inference)
        self.out("m-infer-done\r\n")
        self.out(self.results + "\r\n")
        self.last_window = (first, self.clock_us % 2 ** 32)
        return True

    # -- transport
    def _serve(self):
        serve_connections(self._server, self._stop, self._connected)

    def _connected(self, conn):
        self._conn = conn
        try:
            self._session(conn)
        except OSError:
            pass

    def _session(self, conn):
        self.boot()
        for text in read_commands(lambda: conn.recv(256), self._stop):
            self.received.append(text)
            self.dispatch(text)
            if self.fault == "lose_port" and self._conn.fileno() < 0:
                return

    def dispatch(self, text: str):
        self.handle(text)

    def close(self):
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=5)


class InterfaceBoardDut(ReferenceDut):
    """The same DUT behind an EEMBC interface board (InterfaceMenu.cpp): `dut <cmd>%` is
    answered `m-dut-passthrough(<cmd>)`, `m-ready`, then every DUT line relayed with the
    `[dut]: ` prefix; `name%` names the board itself. The board is quiet at boot."""

    def boot(self):
        pass

    def dispatch(self, text: str):
        if text == "name":
            self.out("tinyML Enhanced Interface Board\r\nm-ready\r\n")
            return
        if not text.startswith("dut "):
            self.out(f"e-[Unknown command: {text}]\r\nm-ready\r\n")
            return
        command = text[len("dut "):]
        self.out(f"m-dut-passthrough({command})\r\nm-ready\r\n")
        relayed, out = [], self.out
        self.out = relayed.append
        try:
            self.handle(command)
        finally:
            self.out = out
        for line in "".join(relayed).splitlines(keepends=True):
            self.out("[dut]: " + line)


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
        serve_connections(self._server, self._stop, lambda conn: self._loop(lambda: conn.recv(256), conn.sendall))

    def _serve_fd(self):
        import select

        def recv():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                raise socket.timeout
            return os.read(self._master, 256)
        self._loop(recv, lambda b: os.write(self._master, b))

    def _loop(self, recv, send):
        self._send = send
        if not self._opened.wait(5):
            return
        if self.fault != "interface":  # an interface board stays quiet until spoken to
            self._lines(["m-timestamp-mode-performance", "m-lap-us-0", "m-init-done"])
        for cmd in read_commands(recv, self._stop):
            self.received.append(cmd)
            self._handle(cmd)

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
