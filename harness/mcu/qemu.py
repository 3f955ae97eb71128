"""The emulated board: QEMU runs the firmware ELF with its UART on a local TCP port.

``-serial tcp:...,server=on,wait=on`` holds the guest until the host connects, so the
boot banner is never lost; ``-icount shift=0`` makes guest time deterministic (one
instruction = one virtual nanosecond), so timings are emulated, not measured. The
process is always killed: on close, on error and at interpreter exit.
"""
from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..errors import DeviceError

CONNECT_TIMEOUT_S = 20.0


def qemu_missing(binary: str = "qemu-system-arm") -> str | None:
    if shutil.which(binary) is None:
        return f"{binary} not found (apt-get install qemu-system-arm)"
    return None


class _PortTaken(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Qemu:
    """One QEMU process; ``url`` is the pyserial URL of the guest's UART."""

    def __init__(self, elf: Path, machine: str = "mps2-an385", icount_shift: int | None = 0,
                 extra_args=(), binary: str = "qemu-system-arm"):
        self.elf, self.machine, self.binary = Path(elf), machine, binary
        self.icount_shift, self.extra_args = icount_shift, list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.port = None

    def argv(self, port: int) -> list[str]:
        argv = [self.binary, "-M", self.machine, "-display", "none", "-monitor", "none",
                "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on", "-kernel", str(self.elf)]
        if self.icount_shift is not None:
            argv += ["-icount", f"shift={self.icount_shift}"]
        return argv + self.extra_args

    def start(self, timeout_s: float = CONNECT_TIMEOUT_S) -> str:
        """Start QEMU and wait until its UART port listens; the pyserial URL."""
        missing = qemu_missing(self.binary)
        if missing:
            raise DeviceError(f"cannot start the emulated board: {missing}")
        for attempt in range(3):  # a free port can be taken by another process before QEMU binds it
            try:
                return self._start_once(timeout_s)
            except _PortTaken:
                continue
        raise DeviceError("QEMU could not bind a free local TCP port for its serial line (3 attempts)")

    def _start_once(self, timeout_s: float) -> str:
        self.stop()
        self.port = _free_port()
        self.proc = subprocess.Popen(self.argv(self.port), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                code, argv = self.proc.returncode, " ".join(self.argv(self.port))
                self.stop()
                if "Address already in use" in out:
                    raise _PortTaken()
                raise DeviceError(f"QEMU exited with {code} at start ({argv}): {out.strip()[-800:]}")
            if _listening(self.port):
                return self.url
            time.sleep(0.02)
        self.stop()
        raise DeviceError(f"QEMU did not open its serial port 127.0.0.1:{self.port} within {timeout_s:g} s")

    def connect(self, timeout_s: float = 5.0, baudrate: int = 115200):
        """A pyserial port on the guest's UART that keeps the first bytes. pyserial's open()
        ends with reset_input_buffer(), which for socket:// reads and drops whatever has
        arrived, and QEMU starts the guest (and its boot banner) the moment we connect."""
        return open_keeping_input(self.url, timeout_s, baudrate)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - kill is not ignorable
            pass
        if proc.stdout:
            proc.stdout.close()
        atexit.unregister(self.stop)


def open_keeping_input(url: str, timeout_s: float, baudrate: int = 115200):
    import serial

    port = serial.serial_for_url(url, do_not_open=True, timeout=timeout_s, baudrate=baudrate)
    port.reset_input_buffer = lambda: None  # only for open(); see Qemu.connect
    try:
        port.open()
    finally:
        del port.reset_input_buffer
    return port


def _listening(port: int) -> bool:
    """True when something listens on the port. QEMU accepts one client, so probing by
    connecting would consume it; read the kernel's table of listening sockets instead."""
    try:
        text = Path("/proc/net/tcp").read_text()
    except OSError:  # not Linux: connecting would take the only slot; give QEMU a moment
        time.sleep(0.5)
        return True
    needle = f":{port:04X} "
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) > 3 and parts[1].endswith(needle.strip()) and parts[3] == "0A":  # LISTEN
            return True
    return False
