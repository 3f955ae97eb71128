"""The Source of an SSH board: on-board meters read its files and run its programs over
the device's own connection (``harness.devices.sshlink.Link``, handed over by
``SshDevice.meter_source``).

Files go through SFTP; a streaming program runs in its own SSH channel as
``sh -c 'echo harness-pid $$; exec "$@"' sh ARGV...`` (every element quoted), so the
meter learns the program's PID and ``close()`` can end it with ``kill -TERM`` (then
``-KILL``) even though SSH does not forward signals. Samples are stamped on the
controller at arrival: pass the board's clock offset (``clock_offset_s``) to summarize.
"""
from __future__ import annotations

import posixpath
import socket
import time

from .base import MeterError
from .source import Process, Source

PID_TAG = "harness-pid "
WRAPPER = 'echo "harness-pid $$"; exec "$@"'


class SshProcess(Process):
    def __init__(self, link, argv, start_timeout_s: float = 10.0):
        self.link, self.argv = link, list(argv)
        self._buf, self._closed, self.pid = b"", False, None
        chan = link.start(["sh", "-c", WRAPPER, "sh", *self.argv], combine_stderr=True)
        chan.settimeout(0.25)
        self.chan = chan
        deadline = time.monotonic() + start_timeout_s
        while self.pid is None and time.monotonic() < deadline:
            line = self._line()
            if line is None:
                continue
            if line == "":
                break
            if line.startswith(PID_TAG):
                self.pid = int(line[len(PID_TAG):].strip())
        if self.pid is None:
            self.close()
            raise OSError(f"{self.argv[0]}: the board did not start it")

    def _line(self):
        """One line; '' at end of output; None after a read timeout with no full line."""
        while b"\n" not in self._buf:
            try:
                data = self.chan.recv(4096)
            except socket.timeout:
                return None
            if not data:
                rest, self._buf = self._buf, b""
                return rest.decode(errors="replace")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode(errors="replace") + "\n"

    def readline(self) -> str:
        while True:
            line = self._line()
            if line is not None:
                return line
            if self._closed:
                return ""

    def close(self, timeout: float = 2.0) -> None:
        self._closed = True
        if self.pid is not None:
            for signal in ("-TERM", "-KILL"):
                try:
                    self.link.run(["kill", signal, str(self.pid)], timeout_s=timeout)
                except Exception:  # a dead link: closing the channel is all that is left
                    break
                end = time.monotonic() + timeout
                while time.monotonic() < end and not self.chan.exit_status_ready():
                    time.sleep(0.02)
                if self.chan.exit_status_ready():
                    break
        self.chan.close()


class SshSource(Source):
    def __init__(self, link, root: str = "/"):
        self.link, self.root = link, root or "/"

    def path(self, path: str) -> str:
        return posixpath.join(self.root, str(path).lstrip("/"))

    def read_text(self, path: str) -> str:
        with self.link.sftp.open(self.path(path), "r") as f:
            return f.read().decode(errors="replace")

    def listdir(self, path: str) -> list:
        return sorted(self.link.sftp.listdir(self.path(path)))

    def popen(self, argv) -> Process:
        if isinstance(argv, str):
            raise TypeError("argv must be a list of arguments, not a shell string")
        return SshProcess(self.link, argv)

    def run(self, argv, timeout: float = 5.0) -> str:
        done = self.link.run(list(argv), timeout_s=timeout)
        if done.returncode != 0:
            raise OSError(f"{argv[0]} exited with {done.returncode}: {(done.stdout + done.stderr).strip()[:200]}")
        return done.stdout

    def describe(self) -> str:
        return f"ssh {self.link.label}" + (f" (root {self.root})" if self.root != "/" else "")


def board_clock_seconds(done) -> float:
    """Seconds since the epoch from `date +%s.%N`; BusyBox dates without %N give whole
    seconds (the offset is then good to a second, which the window length must cover)."""
    text = done.stdout.strip()
    whole, _, frac = text.partition(".")
    if done.returncode != 0 or not whole.isdigit():
        raise MeterError(f"cannot read the board's clock (`date +%s.%N` exited {done.returncode}: "
                         f"{text[:80]!r} {done.stderr.strip()[:200]!r})")
    return float(whole + "." + frac) if frac.isdigit() else float(whole)


def clock_offset_s(link, tries: int = 5) -> float:
    """Board clock minus host clock, from the round trip with the smallest delay."""
    best = None
    for _ in range(tries):
        t0 = time.time()
        done = link.run(["date", "+%s.%N"], timeout_s=5.0)
        t1 = time.time()
        board = board_clock_seconds(done)
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, board - (t0 + t1) / 2.0)
    return best[1]
