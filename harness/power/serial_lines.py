"""Complete text lines from a serial port (pyserial), with a read timeout.

pyserial's ``readline()`` returns a partial line when its timeout strikes; a meter would
count the halves as garbage. This reader keeps partial input until its newline arrives.
"""
from __future__ import annotations

from .base import MeterError


def open_port(url: str, baudrate: int, timeout: float = 0.2):
    """A pyserial port for a device path or a pyserial URL (socket://, loop://, rfc2217://)."""
    try:
        import serial
    except ImportError:
        raise MeterError("serial meters need pyserial (pip install pyserial)") from None
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise MeterError(f"cannot open serial port {url!r}: {exc}") from None


class LineReader:
    """``readline()``: one complete line without its end ('' after a timeout with no line)."""

    def __init__(self, port, encoding="ascii"):
        self.port, self.encoding, self._buf = port, encoding, b""

    def readline(self) -> str:
        while b"\n" not in self._buf:
            chunk = self.port.read(max(1, getattr(self.port, "in_waiting", 0) or 0))
            if not chunk:
                return ""
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode(self.encoding, "replace") + "\n"

    def write_line(self, text: str, eol: str = "\n") -> None:
        self.port.write((text + eol).encode(self.encoding))
        self.port.flush()

    def close(self):
        self.port.close()


def align(t_device, t_arrival):
    """Host time of each device-clock timestamp: device time + the smallest observed
    (arrival - device time). Transport latency only delays arrival, so the minimum is the
    best offset estimate; returns (host_times, offset_s, spread_s)."""
    if not t_device:
        return [], None, None
    diffs = [a - d for d, a in zip(t_device, t_arrival)]
    offset = min(diffs)
    return [d + offset for d in t_device], offset, max(diffs) - offset
