"""The host side of the EEMBC / MLPerf Tiny DUT serial protocol.

Pure over a pyserial-like object (``write``, ``read``, ``in_waiting``, ``timeout``),
so the same client drives a USB CDC port, a ``socket://`` URL to QEMU, or a test peer.

Host -> DUT: ``cmd arg%`` (no CR/LF). DUT -> host: lines; every command ends with
``m-ready``; errors are ``e-[...]``. Two modes (docs/mcu.md has the full table):

strict (the project's own firmware): lines end CR LF and start ``m-``/``e-``; anything
    else is an error.
tolerant (any MLPerf Tiny firmware, as the reference runner reads it): lines split on LF,
    CR dropped, empty lines skipped; printable lines that are not ``m-``/``e-`` are kept
    in ``log`` (the reference submissions print some LF-only, unprefixed messages);
    results may end with a comma.

In both: non-ASCII bytes, a reply out of the MLPerf Tiny order, an ``e-`` line, the
reference firmware's size-check messages (the input it got is not what it runs), a
window whose DUT time disagrees with the host's clock, a lost port or a silence longer
than the timeout each raise :class:`DutError`, which names the command and what came
back. Nothing here waits without a deadline.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ..errors import DeviceError

MAX_LINE = 4096          # longer than any legal reply (10 results are ~80 chars)
RELAY_PREFIX = "[dut]: "  # how an EEMBC interface board relays the DUT's lines
QUIET_S = 0.2            # silence that means a DUT has finished talking (resync)
CHUNK_BYTES = 31         # 62 hex digits + "db " + "%" fits the DUT's 80-char command buffer
WRAP_US = 2 ** 32         # the reference th_timestamp prints a 32-bit microsecond counter (%lu)
# A DUT window lies inside the host's window around it (send .. m-ready), so it is never
# longer, beyond this clock tolerance (an untrimmed RC oscillator is off by a few %). It
# is shorter only by the wire time at the baud rate and latency (USB-serial latency
# timers, a busy host): that side is checked on windows of at least LOWER_BOUND_MIN_S,
# with LATENCY_SLACK_S, where a stall cannot pass for a wrong DUT clock.
CLOCK_TOLERANCE = 0.05
LATENCY_SLACK_S = 0.25
LOWER_BOUND_MIN_S = 1.0
_READY = re.compile(rb"(?:\[dut\]: )?m-ready\r?\n")
_LINE = re.compile(r"[me]-[\x20-\x7e]*")
_PRINTABLE = re.compile(r"[\x20-\x7e\t]*")
# Messages of the reference submissions that mean the DUT will not run what was sent.
_REFUSALS = (
    (re.compile(r"Input db has (\d+) elemented, expected (\d+)"),
     "the firmware expects {1} input elements and got {0}: the device YAML's serial.model "
     "does not describe the model this firmware holds"),
    (re.compile(r"Supplied buffer size (\d+) exceeds maximum of (\d+)"),
     "the firmware's input buffer holds {1} bytes, {0} were sent: the device YAML's "
     "serial.model does not describe the model this firmware holds"),
)


class DutError(DeviceError):
    """The DUT answered badly or not at all; names the command and what came back."""

    def __init__(self, command: str, problem: str, received=(), port_failed: bool = False):
        self.command, self.problem, self.received = command, problem, list(received)
        self.port_failed = port_failed  # the port itself failed (not the DUT's reply)
        text = f"DUT command {command!r}: {problem}"
        if self.received:
            shown = [r if isinstance(r, str) else repr(r) for r in self.received[-8:]]
            text += "; received: " + " | ".join(shown)
        super().__init__(text)


@dataclass(frozen=True)
class InferWindow:
    """One ``infer N W`` window: DUT timestamps in microseconds (None in energy mode, where
    the energy monitor times the window), the elapsed DUT time (modulo 2**32 across a wrap
    of a 32-bit counter), the host's time around the window and the last results."""

    n: int
    warmup: int
    t0_us: int | None
    t1_us: int | None
    results: list
    elapsed_us: int | None = None
    host_s: float | None = None


def elapsed_us(command: str, t0: int, t1: int, lines) -> int:
    """t1 - t0 of the DUT's microsecond counter; one wrap of a 32-bit counter allowed."""
    if t1 >= t0:
        return t1 - t0
    if t0 < WRAP_US and t1 < WRAP_US:
        return t1 + WRAP_US - t0
    raise DutError(command, "the second timestamp is before the first", lines)


class DutClient:
    def __init__(self, port, timeout_s: float = 5.0, chunk_bytes: int = CHUNK_BYTES,
                 us_per_inference_budget: float = 1e6, interface_board: bool = False,
                 strict: bool = True, energy_mode: bool = False, baud: int | None = None,
                 clock_check: bool = False, clock=time.monotonic):
        """``timeout_s`` bounds every reply line; ``infer`` adds ``us_per_inference_budget``
        per inference (a slow board may take seconds per window). With
        ``interface_board`` the host talks to an EEMBC energy-mode interface board: each
        command goes out as ``dut <command>%``, the board acknowledges
        ``m-dut-passthrough(<command>)`` and ``m-ready``, then relays the DUT's lines
        prefixed ``[dut]: `` (use chunk_bytes=26 there). ``strict``: see the module text.
        ``energy_mode``: the DUT prints no ``m-lap-us`` (its timestamps are GPIO edges).
        ``clock_check``: each window's DUT time is held against ``clock`` (the host's,
        seconds) around it, with ``baud``'s wire time (the serial kind turns it on for real
        boards; an emulated board's guest time is not the host's)."""
        if not 1 <= chunk_bytes <= 38:  # 2*38 + len("db %") = 80, the DUT's buffer
            raise ValueError(f"chunk_bytes must be 1..38, got {chunk_bytes}")
        self.port, self.timeout_s, self.chunk_bytes = port, timeout_s, chunk_bytes
        self.us_per_inference_budget = us_per_inference_budget
        self._buffer = bytearray()  # bytes read past the last complete line
        self.interface_board = interface_board
        self.strict, self.energy_mode = strict, energy_mode
        self.baud, self.clock_check, self.clock = baud, clock_check, clock
        self.log: list[str] = []     # tolerated lines that are not protocol: "command: line"
        self.boot_mode: str | None = None  # "performance" | "energy", from a boot banner seen
        self._relayed = True  # lines now carry the relay prefix (after the board's own ack)
        self._wire_bytes = 0  # bytes sent and received since the last reset (wire time)

    # ------------------------------------------------------------ line layer

    def _send(self, command: str) -> None:
        if self._buffer:  # bytes nobody asked for: the link is out of step
            stray, self._buffer = bytes(self._buffer), bytearray()
            raise DutError(command, "unexpected bytes from the DUT before the command was sent", [stray])
        data = (("dut " if self.interface_board else "") + command + "%").encode("ascii")
        if len(data) > 80:
            raise ValueError(f"command longer than the DUT's 80-char buffer: {command!r}")
        try:
            self.port.write(data)
            flush = getattr(self.port, "flush", None)
            if flush is not None:
                flush()
        except OSError as exc:  # pyserial's SerialException is an OSError
            raise DutError(command, f"the serial port failed while sending: {exc}", port_failed=True) from None
        self._wire_bytes += len(data)

    def _line(self, command: str, deadline: float, seen: list) -> str:
        """One protocol line, checked; tolerated other lines go to ``log``. Raises
        DutError on silence, garbage, a lost port, a refusal message or ``e-``."""
        while True:
            text = self._next_text(command, deadline, seen)
            if text is None:
                continue
            seen.append(text)
            if text.startswith("e-"):
                self._drain(deadline)  # its m-ready must not be taken as the next command's
                raise DutError(command, f"the DUT reported an error: {text}", seen)
            return text

    def _next_text(self, command: str, deadline: float, seen: list) -> str | None:
        """The next line as text: None for a line that is tolerated and skipped."""
        raw = self._read_line(command, deadline, seen)
        if not raw.endswith(b"\n"):
            why = "silent: no reply" if not raw else "reply cut off (no line end) before the timeout"
            if len(raw) >= MAX_LINE:
                why = f"a reply line longer than {MAX_LINE} bytes"
            raise DutError(command, f"{why} within {self.timeout_s:g} s", seen + ([raw] if raw else []))
        crlf = raw.endswith(b"\r\n")
        # as the reference runner reads: CR and NUL dropped, the line ends at LF
        body = raw[:-2] if self.strict and crlf else raw[:-1].replace(b"\r", b"").replace(b"\0", b"")
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise DutError(command, "garbage (non-ASCII bytes) in the reply", seen + [raw]) from None
        if self.interface_board and self._relayed:
            if text.startswith(RELAY_PREFIX):
                text = text[len(RELAY_PREFIX):]
            elif self.strict:
                raise DutError(command, f"a line without the interface board's {RELAY_PREFIX!r} prefix",
                               seen + [raw])
        for pattern, meaning in _REFUSALS:
            m = pattern.search(text)
            if m:
                self._drain(deadline)  # the rest of the reply must not be taken as the next one's
                raise DutError(command, meaning.format(*m.groups()), seen + [text])
        if self.strict and not crlf:
            raise DutError(command, "a line ending LF only (strict: the firmware ends lines CR LF)", seen + [raw])
        if _LINE.fullmatch(text):
            return text
        if not _PRINTABLE.fullmatch(text):
            raise DutError(command, "garbage: a reply line with control characters", seen + [raw])
        if self.strict:
            raise DutError(command, "garbage: a reply line must be printable ASCII starting m- or e-",
                           seen + [raw])
        if text.strip():
            self.log.append(f"{command}: {text}")
        return None

    def _read_line(self, command: str, deadline: float, seen=()) -> bytes:
        """Bytes up to and including LF; what came (maybe nothing) if the deadline or
        MAX_LINE is reached first. Reads what is waiting in one call, not byte by byte."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end + 1])
                del self._buffer[:end + 1]
                self._wire_bytes += len(line)
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(self._buffer) >= MAX_LINE:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
            try:
                self.port.timeout = remaining
                waiting = getattr(self.port, "in_waiting", 0) or 0
                self._buffer += self.port.read(max(1, min(waiting, MAX_LINE)))
            except OSError as exc:  # the port went away (USB unplugged, socket closed)
                partial = [bytes(self._buffer)] if self._buffer else []
                self._buffer.clear()
                raise DutError(command, f"the serial port failed: {exc}", list(seen) + partial,
                               port_failed=True) from None

    def _drain(self, deadline: float) -> None:
        """Read and drop lines up to the next m-ready, or until the deadline."""
        while time.monotonic() < deadline:
            raw = self._read_line("(drain)", deadline)
            if not raw.endswith(b"\n") or _READY.fullmatch(raw):
                return

    def command(self, command: str, timeout_s: float | None = None) -> list[str]:
        """Send one command; the reply lines before ``m-ready``."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        self._send(command)
        self._acknowledged(command, deadline)
        return self._until_ready(command, deadline)

    def _acknowledged(self, command: str, deadline: float) -> None:
        """Through an interface board: its own ``m-dut-passthrough(<command>)`` and
        ``m-ready`` come first (InterfaceMenu::Passthrough), then the relayed lines."""
        if not self.interface_board:
            return
        self._relayed = False
        try:
            seen: list = []
            expected = f"m-dut-passthrough({command})"
            if self._line(command, deadline, seen) != expected:
                raise DutError(command, f"the interface board did not acknowledge with {expected}", seen)
            if self._line(command, deadline, seen) != "m-ready":
                raise DutError(command, "the interface board did not follow its acknowledgement with m-ready",
                               seen)
        finally:
            self._relayed = True

    def _until_ready(self, command: str, deadline: float) -> list[str]:
        seen: list = []
        while True:
            line = self._line(command, deadline, seen)
            if line == "m-ready":
                return seen[:-1]

    def _note_banner(self, line: str) -> None:
        m = re.fullmatch(r"m-timestamp-mode-(\w+)", line)
        if m:
            self.boot_mode = m.group(1)

    def wait_boot(self, timeout_s: float | None = None) -> list[str]:
        """The boot banner up to ``m-ready`` (after a reset or QEMU start)."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        lines = self._until_ready("(boot)", deadline)
        if "m-init-done" not in lines:
            raise DutError("(boot)", "boot banner without m-init-done", lines + ["m-ready"])
        for line in lines:
            self._note_banner(line)
        return lines

    def sync(self, timeout_s: float | None = None) -> str:
        """``name%`` on a freshly opened port, where a boot banner may come first (a board
        reset by opening its port, or after flashing); banner lines are skipped, anything
        else is an error. Returns the DUT's name."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        banner = re.compile(r"m-timestamp-mode-\w+|m-lap-us-\d+|m-init-done|m-ready")
        self._send("name")
        self._acknowledged("name", deadline)
        seen: list = []
        while True:
            line = self._line("name", deadline, seen)
            m = re.fullmatch(r"m-name-dut-\[(.*)\]", line)
            if m:
                if self._line("name", deadline, seen) != "m-ready":
                    raise DutError("name", "expected m-ready after the name", seen)
                return m.group(1)
            if not banner.fullmatch(line):
                raise DutError("name", "unexpected reply while synchronising", seen)
            self._note_banner(line)

    def resync(self, timeout_s: float | None = None) -> str:
        """Back in step after a failed exchange: drop what is buffered, send ``name%`` and
        skip whatever arrives (the rest of an aborted reply, noise) until its answer."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        skipped = []
        # Wait for the line to go quiet first: a late reply to the failed command must not
        # be taken for the answer to this one.
        while time.monotonic() < deadline:
            self._buffer.clear()
            try:
                self.port.timeout = QUIET_S
                stale = self.port.read(MAX_LINE)
            except OSError as exc:
                raise DutError("name", f"the serial port failed: {exc}", skipped, port_failed=True) from None
            if not stale:
                break
            skipped.append(stale)
        self._send("name")
        while time.monotonic() < deadline:
            raw = self._read_line("name", deadline, skipped)
            m = re.fullmatch(rb"(?:\[dut\]: )?m-name-dut-\[(.*)\]\r?\n", raw)
            if m and _READY.fullmatch(self._read_line("name", deadline, skipped)):
                return m.group(1).decode("ascii", "replace")
            skipped.append(raw)
        raise DutError("name", "no answer while getting back in step", skipped)

    # ------------------------------------------------------------ commands

    @staticmethod
    def _expect(command, lines, pattern, what):
        for line in lines:
            m = re.fullmatch(pattern, line)
            if m:
                return m
        raise DutError(command, f"expected {what}", lines)

    def name(self) -> str:
        lines = self.command("name")
        return self._expect("name", lines, r"m-name-dut-\[(.*)\]", "m-name-dut-[...]").group(1)

    def profile(self) -> dict:
        lines = self.command("profile")
        profile = self._expect("profile", lines, r"m-profile-\[(.*)\]", "m-profile-[...]").group(1)
        model = self._expect("profile", lines, r"m-model-\[(.*)\]", "m-model-[...]").group(1)
        return {"profile": profile, "model": model}

    def timestamp(self) -> int:
        lines = self.command("timestamp")
        return int(self._expect("timestamp", lines, r"m-lap-us-(\d+)", "m-lap-us-<n>").group(1))

    def load(self, data: bytes) -> None:
        """``db load N`` then the hex in chunks; the last chunk must answer ``m-load-done``."""
        data = bytes(data)
        if not data:
            raise ValueError("nothing to load")
        command = f"db load {len(data)}"
        lines = self.command(command)
        self._expect(command, lines, rf"m-\[Expecting {len(data)} bytes\]", f"m-[Expecting {len(data)} bytes]")
        for start in range(0, len(data), self.chunk_bytes):
            chunk = data[start:start + self.chunk_bytes]
            command = "db " + chunk.hex()
            lines = self.command(command)
            last = start + len(chunk) == len(data)
            if last and "m-load-done" not in lines:
                raise DutError(command, "expected m-load-done after the last chunk", lines + ["m-ready"])
            if not last and lines:
                raise DutError(command, "unexpected reply to a middle chunk", lines + ["m-ready"])

    def infer(self, n: int, warmup: int, us_per_inference: float | None = None) -> InferWindow:
        """``infer N W``: the MLPerf Tiny reply sequence, timestamps and results. In energy
        mode the two ``m-lap-us`` lines are absent (the monitor timestamps the window).
        ``us_per_inference``: this window's budget per inference (default: the client's)."""
        if n < 1 or warmup < 0:
            raise ValueError(f"infer needs n >= 1 and warmup >= 0, got {n}, {warmup}")
        command = f"infer {n} {warmup}"
        per_inference = self.us_per_inference_budget if us_per_inference is None else us_per_inference
        budget = self.timeout_s + (n + warmup) * per_inference / 1e6
        self._wire_bytes = 0
        host0 = self.clock()
        lines = self.command(command, timeout_s=budget)
        host_s = self.clock() - host0
        lap = r"m-lap-us-(\d+)"
        expected = [r"m-warmup-start-(\d+)", r"m-warmup-done", r"m-infer-start-(\d+)", lap, lap,
                    r"m-infer-done", r"m-results-\[(.*)\]"]
        if self.energy_mode:
            expected.remove(lap)
            expected.remove(lap)
            if any(re.fullmatch(lap, line) for line in lines):
                raise DutError(command, "m-lap-us in energy mode: the DUT runs performance-mode firmware "
                               "(serial.mode says energy)", lines + ["m-ready"])
        elif "m-infer-done" in lines and not any(re.fullmatch(lap, line) for line in lines):
            why = ("the DUT booted in energy mode: set serial.mode: energy" if self.boot_mode == "energy"
                   else "a DUT in energy mode prints none (then set serial.mode: energy)")
            raise DutError(command, f"no m-lap-us timestamps in the reply; {why}", lines + ["m-ready"])
        # In this order; other firmware may interleave its own informational m- lines, which
        # are tolerated unless they look like one of these (then the order is broken).
        groups, k = [], 0
        for line in lines:
            m = re.fullmatch(expected[k], line) if k < len(expected) else None
            if m:
                groups.append(m.groups())
                k += 1
            elif any(re.fullmatch(p, line) for p in expected):
                raise DutError(command, f"line {line!r} out of the MLPerf Tiny order", lines + ["m-ready"])
        if k != len(expected):
            raise DutError(command, f"expected {expected[k]!r} (reply {k + 1} of {len(expected)}) "
                           "before m-ready", lines + ["m-ready"])
        if int(groups[0][0]) != warmup or int(groups[2][0]) != n:
            raise DutError(command, "the DUT echoed other counts than were sent", lines)
        results = parse_results(command, groups[-1][0], lines)
        if self.energy_mode:
            return InferWindow(n, warmup, None, None, results, None, host_s)
        t0, t1 = int(groups[3][0]), int(groups[4][0])
        elapsed = elapsed_us(command, t0, t1, lines)
        if self.clock_check:
            self._check_clock(command, elapsed, host_s, lines)
        return InferWindow(n, warmup, t0, t1, results, elapsed, host_s)

    def _check_clock(self, command: str, dut_us: int, host_s: float, lines) -> None:
        """The DUT's window lies inside the host's (send .. m-ready): it cannot be longer,
        and only the wire time and latency can make it shorter."""
        wire_s = self._wire_bytes * 10 / self.baud if self.baud else 0.0  # 8N1: 10 bits a byte
        dut_s = dut_us / 1e6
        too_long = dut_s > host_s * (1 + CLOCK_TOLERANCE) + 1e-3
        too_short = (host_s >= LOWER_BOUND_MIN_S
                     and dut_s * (1 + CLOCK_TOLERANCE) + LATENCY_SLACK_S + wire_s < host_s)
        if too_long or too_short:
            raise DutError(command, f"the DUT timed the window at {dut_s * 1e3:.3f} ms but the host saw "
                           f"{host_s * 1e3:.3f} ms around it ({wire_s * 1e3:.3f} ms of it on the wire at "
                           f"{self.baud} baud): a garbled m-lap-us line or a wrong DUT clock", lines)

    def results(self) -> list[float]:
        lines = self.command("results")
        return parse_results("results", self._expect("results", lines, r"m-results-\[(.*)\]",
                                                     "m-results-[...]").group(1), lines)

    def optional(self, command: str, timeout_s: float | None = None) -> list[str] | None:
        """A firmware-specific command; None when the DUT answers ``Unknown command``."""
        try:
            return self.command(command, timeout_s=timeout_s)
        except DutError as exc:
            if exc.received and str(exc.received[-1]).startswith("e-[Unknown command"):
                return None
            raise


def parse_results(command: str, body: str, lines) -> list[float]:
    """``%0.3f`` values; empty fields (the reference person-detection's trailing comma)
    are skipped, as the reference runner does."""
    try:
        return [float(v) for v in body.split(",") if v.strip()]
    except ValueError:
        raise DutError(command, f"results are not a list of numbers: [{body}]", lines) from None
