"""pty peers that speak the serial meters' protocols (not a test module).

Each peer owns the master side of a pty; the meter opens the slave's path with pyserial.
Every loop polls a stop flag, so nothing outlives the test.
"""
import os
import select
import threading
import time
import tty

from harness.power.lpm01a import encode_value


class PtyPeer:
    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

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
        data = text.encode()
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
    """An MCU printing ``<t_us>,<mV>,<mA>`` at ``rate`` Hz; ``power(t_s)`` gives W at 5 V.

    ``clock_us0`` starts the MCU clock (near 2**32 to test the wrap); ``garbage_every``
    inserts damaged lines; ``die_after_s`` stops streaming (a dead monitor).
    """

    def __init__(self, power, rate=500, clock_us0=123_456, garbage_every=0, die_after_s=None):
        super().__init__()
        self.power, self.rate, self.clock_us0 = power, rate, clock_us0
        self.garbage_every, self.die_after_s = garbage_every, die_after_s

    def run(self):
        start, n, header_at = time.monotonic(), 0, -1.0
        while not self.stop_flag.is_set():
            elapsed = time.monotonic() - start
            if elapsed - header_at >= 0.2:  # repeated, so a late listener learns the rate
                self.write(f"# harness-power-stream v1 rate_hz={self.rate}\n")
                header_at = elapsed
            if self.die_after_s is not None and elapsed > self.die_after_s:
                self.stop_flag.wait(0.05)
                continue
            lines = []
            while n / self.rate <= elapsed:
                t_s = n / self.rate
                t_us = (self.clock_us0 + int(t_s * 1e6)) % 2 ** 32
                n += 1
                if self.garbage_every and n % self.garbage_every == 0:
                    lines.append("#!?garbled,,\n" if n % 2 else "12a4,5000\n")
                    continue
                ma = self.power(time.time()) / 5.0 * 1000.0
                lines.append(f"{t_us},5000.0,{ma:.4f}\n")
            self.write("".join(lines))
            self.stop_flag.wait(0.005)


class Lpm01aPeer(PtyPeer):
    """A PowerShield: acks the configuration commands, streams energy values at 1 kHz
    (ascii_dec, one per line) between ``start`` and ``stop``, reports ``event 7 fal`` at
    ``event_after_s`` and answers unknown commands with ``error``."""

    KNOWN = ("htc", "hrc", "volt", "freq", "acqtime", "output", "format", "trigsrc", "eventsrc",
             "pwr", "start", "stop", "lcd", "trigdelay")

    def __init__(self, watts=0.010, freq=1000, event_after_s=0.1, garbage_every=0, silent=False,
                 second_event_after_s=None):
        super().__init__()
        self.watts, self.freq, self.event_after_s = watts, freq, event_after_s
        self.second_event_after_s = second_event_after_s
        self.garbage_every, self.silent = garbage_every, silent
        self.commands = []

    def run(self):
        buf = b""
        acquiring, n, start, evented = False, 0, 0.0, False
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
                    acquiring = False
                    self.write("PowerShield > ack stop\r\nAcquisition completed\r\n")
                    continue
                self.write(f"PowerShield > ack {cmd}\r\n")
                if word == "start":
                    acquiring, n, start, evented = True, 0, time.monotonic(), False
            if acquiring:
                elapsed = time.monotonic() - start
                lines = []
                while n / self.freq <= elapsed:
                    n += 1
                    if not evented and n / self.freq >= self.event_after_s:
                        lines.append("event 7 fal\r\n")
                        evented = True
                    if self.second_event_after_s and n == int(self.second_event_after_s * self.freq):
                        lines.append("event 7 fal\r\n")
                    if self.garbage_every and n % self.garbage_every == 0:
                        lines.append("64#9-0\r\n")
                    else:
                        lines.append(encode_value(self.watts / self.freq) + "\r\n")
                self.write("".join(lines))
