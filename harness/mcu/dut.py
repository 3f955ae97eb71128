"""The host side of the EEMBC / MLPerf Tiny DUT serial protocol.

Pure over a pyserial-like object (``write``, ``read``, ``in_waiting``, ``timeout``),
so the same client drives a USB CDC port, a ``socket://`` URL to QEMU, or a test peer.

Host -> DUT: ``cmd arg%`` (no CR/LF). DUT -> host: lines ending ``\\r\\n``; every command
ends with ``m-ready``; errors are ``e-[...]``. Parsing is strict: a line that is not
printable ASCII starting ``m-`` / ``e-``, a reply out of the expected order, an ``e-`` line
or a silence longer than the timeout each raise :class:`DutError`, which names the
command and what came back. Nothing here waits without a deadline.
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
_READY = (b"m-ready\r\n", b"[dut]: m-ready\r\n")
_LINE = re.compile(r"[me]-[\x20-\x7e]*")


class DutError(DeviceError):
    """The DUT answered badly or not at all; names the command and what came back."""

    def __init__(self, command: str, problem: str, received=()):
        self.command, self.problem, self.received = command, problem, list(received)
        text = f"DUT command {command!r}: {problem}"
        if self.received:
            shown = [r if isinstance(r, str) else repr(r) for r in self.received[-8:]]
            text += "; received: " + " | ".join(shown)
        super().__init__(text)


@dataclass(frozen=True)
class InferWindow:
    """One ``infer N W`` window: DUT timestamps in microseconds and the last results."""

    n: int
    warmup: int
    t0_us: int
    t1_us: int
    results: list

    @property
    def elapsed_us(self) -> int:
        return self.t1_us - self.t0_us


class DutClient:
    def __init__(self, port, timeout_s: float = 5.0, chunk_bytes: int = CHUNK_BYTES,
                 us_per_inference_budget: float = 1e6, interface_board: bool = False):
        """``timeout_s`` bounds every reply line; ``infer`` adds ``us_per_inference_budget``
        per inference (a slow board may take seconds per window). With
        ``interface_board`` the host talks to an EEMBC energy-mode interface board: each
        command goes out as ``dut <command>%``, the board acknowledges ``m-ready`` and
        relays the DUT's lines prefixed ``[dut]: `` (use chunk_bytes=26 there)."""
        if not 1 <= chunk_bytes <= 38:  # 2*38 + len("db %") = 80, the DUT's buffer
            raise ValueError(f"chunk_bytes must be 1..38, got {chunk_bytes}")
        self.port, self.timeout_s, self.chunk_bytes = port, timeout_s, chunk_bytes
        self.us_per_inference_budget = us_per_inference_budget
        self._buffer = bytearray()  # bytes read past the last complete line
        self.interface_board = interface_board
        self._relayed = True  # lines now carry the relay prefix (after the board's own ack)

    # ------------------------------------------------------------ line layer

    def _send(self, command: str) -> None:
        if self._buffer:  # bytes nobody asked for: the link is out of step
            stray, self._buffer = bytes(self._buffer), bytearray()
            raise DutError(command, "unexpected bytes from the DUT before the command was sent", [stray])
        data = (("dut " if self.interface_board else "") + command + "%").encode("ascii")
        if len(data) > 80:
            raise ValueError(f"command longer than the DUT's 80-char buffer: {command!r}")
        self.port.write(data)
        flush = getattr(self.port, "flush", None)
        if flush is not None:
            flush()

    def _line(self, command: str, deadline: float, seen: list) -> str:
        """One reply line, checked; raises DutError on silence, garbage or ``e-``."""
        raw = self._read_line(deadline)
        if not raw.endswith(b"\r\n"):
            why = "silent: no reply" if not raw else "reply cut off (no CR LF) before the timeout"
            if len(raw) >= MAX_LINE:
                why = f"a reply line longer than {MAX_LINE} bytes"
            raise DutError(command, f"{why} within {self.timeout_s:g} s", seen + ([raw] if raw else []))
        try:
            text = raw[:-2].decode("ascii")
        except UnicodeDecodeError:
            raise DutError(command, "garbage (non-ASCII bytes) in the reply", seen + [raw]) from None
        if self.interface_board and self._relayed:
            if not text.startswith(RELAY_PREFIX):
                raise DutError(command, f"a line without the interface board's {RELAY_PREFIX!r} prefix",
                               seen + [raw])
            text = text[len(RELAY_PREFIX):]
        if not _LINE.fullmatch(text):
            raise DutError(command, "garbage: a reply line must be printable ASCII starting m- or e-",
                           seen + [raw])
        seen.append(text)
        if text.startswith("e-"):
            self._drain(deadline)  # its m-ready must not be taken as the next command's
            raise DutError(command, f"the DUT reported an error: {text}", seen)
        return text

    def _read_line(self, deadline: float) -> bytes:
        """Bytes up to and including CR LF; what came (maybe nothing) if the deadline or
        MAX_LINE is reached first. Reads what is waiting in one call, not byte by byte."""
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end + 2])
                del self._buffer[:end + 2]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(self._buffer) >= MAX_LINE:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
            self.port.timeout = remaining
            waiting = getattr(self.port, "in_waiting", 0) or 0
            self._buffer += self.port.read(max(1, min(waiting, MAX_LINE)))

    def _drain(self, deadline: float) -> None:
        """Read and drop lines up to the next m-ready, or until the deadline."""
        while time.monotonic() < deadline:
            raw = self._read_line(deadline)
            if not raw.endswith(b"\r\n") or raw in _READY:
                return

    def command(self, command: str, timeout_s: float | None = None) -> list[str]:
        """Send one command; the reply lines before ``m-ready``."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        self._send(command)
        self._acknowledged(command, deadline)
        return self._until_ready(command, deadline)

    def _acknowledged(self, command: str, deadline: float) -> None:
        """Through an interface board: its own m-ready comes first, then the relayed lines."""
        if not self.interface_board:
            return
        self._relayed = False
        try:
            seen: list = []
            if self._line(command, deadline, seen) != "m-ready":
                raise DutError(command, "the interface board did not acknowledge with m-ready", seen)
        finally:
            self._relayed = True

    def _until_ready(self, command: str, deadline: float) -> list[str]:
        seen: list = []
        while True:
            line = self._line(command, deadline, seen)
            if line == "m-ready":
                return seen[:-1]

    def wait_boot(self, timeout_s: float | None = None) -> list[str]:
        """The boot banner up to ``m-ready`` (after a reset or QEMU start)."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        lines = self._until_ready("(boot)", deadline)
        if "m-init-done" not in lines:
            raise DutError("(boot)", "boot banner without m-init-done", lines + ["m-ready"])
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

    def resync(self, timeout_s: float | None = None) -> str:
        """Back in step after a failed exchange: drop what is buffered, send ``name%`` and
        skip whatever arrives (the rest of an aborted reply, noise) until its answer."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        skipped = []
        # Wait for the line to go quiet first: a late reply to the failed command must not
        # be taken for the answer to this one.
        while time.monotonic() < deadline:
            self._buffer.clear()
            self.port.timeout = QUIET_S
            stale = self.port.read(MAX_LINE)
            if not stale:
                break
            skipped.append(stale)
        self._send("name")
        while time.monotonic() < deadline:
            raw = self._read_line(deadline)
            m = re.fullmatch(rb"(?:\[dut\]: )?m-name-dut-\[(.*)\]\r\n", raw)
            if m and self._read_line(deadline) in _READY:
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

    def infer(self, n: int, warmup: int) -> InferWindow:
        """``infer N W``: the exact MLPerf Tiny reply sequence, timestamps and results."""
        if n < 1 or warmup < 0:
            raise ValueError(f"infer needs n >= 1 and warmup >= 0, got {n}, {warmup}")
        command = f"infer {n} {warmup}"
        budget = self.timeout_s + (n + warmup) * self.us_per_inference_budget / 1e6
        lines = self.command(command, timeout_s=budget)
        expected = [r"m-warmup-start-(\d+)", r"m-warmup-done", r"m-infer-start-(\d+)",
                    r"m-lap-us-(\d+)", r"m-lap-us-(\d+)", r"m-infer-done", r"m-results-\[(.*)\]"]
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
        t0, t1 = int(groups[3][0]), int(groups[4][0])
        if t1 < t0:
            raise DutError(command, "the second timestamp is before the first", lines)
        return InferWindow(n, warmup, t0, t1, parse_results(command, groups[6][0], lines))

    def results(self) -> list[float]:
        lines = self.command("results")
        return parse_results("results", self._expect("results", lines, r"m-results-\[(.*)\]",
                                                     "m-results-[...]").group(1), lines)

    def optional(self, command: str) -> list[str] | None:
        """A firmware-specific command; None when the DUT answers ``Unknown command``."""
        try:
            return self.command(command)
        except DutError as exc:
            if exc.received and str(exc.received[-1]).startswith("e-[Unknown command"):
                return None
            raise


def parse_results(command: str, body: str, lines) -> list[float]:
    try:
        return [float(v) for v in body.split(",")] if body else []
    except ValueError:
        raise DutError(command, f"results are not a list of numbers: [{body}]", lines) from None
