"""ST X-NUCLEO-LPM01A (PowerShield) on the controller side, driven as the MLPerf Tiny
energy runner drives it.

    - meter: lpm01a
      port: /dev/ttyACM0
      baudrate: 3686400
      voltage_mv: 3000          # the DUT supply, 1800..3300
      freq: 1k                  # 1..5k in ascii_dec (unlimited acquisition time)
      output: energy            # energy (J per sample period) | current (A)
      events: true              # eventsrc d7 fal: DUT timestamp GPIO edges reported
      power_on: true            # pwr on before acquiring (the LPM01A powers the DUT)

Session (host -> LPM01A, one command per line): ``htc`` (host takes control), ``volt
<mV>m``, ``freq <f>``, ``acqtime 0`` (infinite), ``output energy``, ``format ascii_dec``,
``trigsrc sw``, ``eventsrc d7 fal``, ``pwr on``; per recording ``start`` ... ``stop``
(ended by "Acquisition completed"); ``hrc`` at close. Each command is answered by a line
``ack <command>`` or ``error <command>`` (followed by ``Error detail: ...``), possibly
after a ``PowerShield > `` prompt. Data lines hold values like ``6409-07`` (= 6409e-7,
A or J); several may share a line. ``event <n> <edge>`` marks a GPIO edge,
``TimeStamp: ...`` lines are progress reports.

Sample i covers [i/f, (i+1)/f] of the acquisition clock; energy samples become power
E x f at the period's middle. The acquisition clock is mapped onto the host's with the
smallest (arrival - sample time), as for the generic stream. An unparsable line is
counted and stands for one missing sample (NaN), so lost data leaves a gap.

Verified against: the PowerShield command reference (UM2269) and the MLPerf Tiny runner's
command sequence; NOT against a physical board (the tests use a pty peer that speaks
this protocol). The line ending the firmware expects and the exact prompt are the main
assumptions.
"""
from __future__ import annotations

import re
import threading
import time

from . import meter
from .energy import event_window  # noqa: F401  (documented here too; its home is energy)
from .base import LineStreamMeter, MeterError, Option
from .serial_lines import LineReader, align, open_port

FREQS = ("1", "2", "5", "10", "20", "50", "100", "200", "500", "1k", "2k", "5k")
_VALUE = re.compile(r"(\d{4})([-+]\d{2})")
_EVENT = re.compile(r"^event\s+(\d+)\s+(\w+)")
PROMPT = "PowerShield >"
INFO = ("TimeStamp", "Acquisition completed", "Summary", "PowerShield", "Error detail",
        "ack ", "error ", "Target", "Power", "Warning")


def decode_value(token: str) -> float:
    """``6409-07`` -> 6.409e-4."""
    m = _VALUE.fullmatch(token)
    if not m:
        raise ValueError(token)
    return int(m.group(1)) * 10.0 ** int(m.group(2))


def encode_value(x: float) -> str:
    """The inverse, for peers and tests: four mantissa digits and a signed exponent."""
    if x <= 0:
        return "0000-00"
    import math
    e = math.floor(math.log10(x)) - 3
    m = int(round(x / 10 ** e))
    if m >= 10000:
        m, e = m // 10, e + 1
    return f"{m:04d}{e:+03d}"


def freq_hz(text: str) -> float:
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


@meter("lpm01a")
class Lpm01aMeter(LineStreamMeter):
    close_before_join = False
    OPTIONS = {
        "port": Option(str, required=True, help="the LPM01A's serial port"),
        "baudrate": Option(int, 3686400, minimum=50, help="the port's baud rate"),
        "voltage_mv": Option(int, 3000, minimum=1800, maximum=3300, help="the DUT supply voltage"),
        "freq": Option(str, "1k", choices=FREQS, help="acquisition frequency"),
        "output": Option(str, "energy", choices=("energy", "current"),
                         help="energy (J per period) or current (A, times the voltage)"),
        "events": Option(bool, True, help="record the DUT's timestamp GPIO edges (MLPerf Tiny energy mode)"),
        "power_on": Option(bool, True, help="the LPM01A supplies the DUT"),
        "timeout_s": Option(float, 3.0, minimum=0.1, maximum=60.0, help="seconds to wait for each reply"),
    }

    def __init__(self, options, source=None, label=None):
        super().__init__(options, source, label)
        self.f = freq_hz(options["freq"])
        self.nominal_rate_hz = self.f
        self._reader = None

    # -- the command exchange (no reader thread runs meanwhile)
    def command(self, cmd: str) -> list:
        """Send one command and wait for its ack; returns the lines seen before it."""
        reader = self._reader
        reader.write_line(cmd)
        seen, deadline = [], time.monotonic() + self.options["timeout_s"]
        while time.monotonic() < deadline:
            line = reader.readline()
            if not line:
                continue
            text = line.replace(PROMPT, "").strip()
            if text.startswith("ack") and cmd.split()[0] in text:
                return seen
            if text.startswith("error") and cmd.split()[0] in text:
                detail = ""
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    more = reader.readline().replace(PROMPT, "").strip()
                    if more.startswith("Error detail"):
                        detail = more.split(":", 1)[-1].strip()
                        break
                raise MeterError(f"{self.label}: LPM01A refused {cmd!r}: {detail or text}")
            if text:
                seen.append(text)
        raise MeterError(f"{self.label}: no ack for {cmd!r} from {self.options['port']} within "
                         f"{self.options['timeout_s']} s (wrong port or baud rate? "
                         f"the LPM01A talks at 3686400)")

    def _configure(self):
        o = self.options
        self._reader = LineReader(open_port(o["port"], o["baudrate"], 0.1))
        self._reader.port.reset_input_buffer()
        for cmd in ("htc", f"volt {o['voltage_mv']}m", f"freq {o['freq']}", "acqtime 0",
                    f"output {o['output']}", "format ascii_dec", "trigsrc sw"):
            self.command(cmd)
        if o["events"]:
            self.command("eventsrc d7 fal")
        if o["power_on"]:
            self.command("pwr on")

    def open_stream(self):
        if self._reader is None:
            self._configure()
        self._samples, self._events, self._arrivals = [], [], []
        self._completed = threading.Event()
        self.command("start")
        return self._reader

    def stream_ended(self, stream):
        return False

    def parse(self, line, t, trace):
        text = line.replace(PROMPT, "").strip()
        values = _VALUE.findall(text)
        if values and _VALUE.sub("", text).strip() == "":
            for m, e in values:
                self._samples.append(int(m) * 10.0 ** int(e))
                self._arrivals.append((len(self._samples), t))
            return True
        ev = _EVENT.match(text)
        if ev:
            self._events.append((len(self._samples), ev.group(2), t))
            return True
        if text.startswith("Acquisition completed"):
            self._completed.set()
            return True
        if text.startswith(INFO):
            return True
        self._samples.append(float("nan"))  # a damaged line: one lost sample
        return False

    def stop(self):
        if self._thread is not None:
            self._reader.write_line("stop")
            if not self._completed.wait(self.options["timeout_s"]):
                self._trace.notes.append("no 'Acquisition completed' after stop")
        return super().stop()

    def close_stream(self, stream):
        pass  # the port stays open between recordings; close() releases it

    def finish(self, trace):
        f = self.f
        # Arrival of the line holding sample k stamps the end of sample k's period.
        ends = [k / f for k, _a in self._arrivals]
        _host, offset, spread = align(ends, [a for _k, a in self._arrivals])
        offset = offset if offset is not None else trace.started
        scale = f if self.options["output"] == "energy" else self.options["voltage_mv"] / 1000.0
        for i, v in enumerate(self._samples):
            trace.t.append(offset + (i + 0.5) / f)
            trace.watts.append(v * scale)
        trace.extra["events"] = [{"t": offset + k / f, "edge": edge} for k, edge, _a in self._events]
        trace.extra["arrival_jitter_s"] = spread
        trace.extra["lpm01a"] = {"freq_hz": f, "output": self.options["output"],
                                 "voltage_mv": self.options["voltage_mv"]}

    def close(self):
        super().close()
        if self._reader is not None:
            try:
                self.command("hrc")
            except MeterError:
                pass
            self._reader.close()
            self._reader = None
