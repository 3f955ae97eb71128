"""A generic timestamped sample stream from a small MCU (e.g. an INA219 behind an Arduino
or an RP2040) on the controller side, over a serial port.

    - meter: serial_stream
      port: /dev/ttyACM0          # or a pyserial URL: socket://host:port, rfc2217://...
      baudrate: 115200
      rate_hz: 1000               # nominal; the stream's header overrides it

The line format (version 1), ASCII, one line per sample, ``\\n`` or ``\\r\\n`` ended:

    # harness-power-stream v1 rate_hz=1000
    <t_us>,<bus_mV>,<current_mA>

``t_us`` is the MCU's microsecond clock (unsigned, may wrap at 2**32); ``bus_mV`` and
``current_mA`` are decimal numbers (fractions allowed). Lines starting with ``#`` are
comments; a ``# harness-power-stream`` line is the header (printed at boot and may be
repeated) and its ``key=value`` fields are kept. Any other line is counted as bad.
Power = bus_mV x current_mA / 1000 (mW) -> W.

Alignment: every line is stamped with the host's clock on arrival; the MCU clock is mapped
onto it with the smallest (arrival - t_us) seen, since transport only ever delays. A clock
that goes backwards without being near 2**32 is an MCU restart: a new segment, aligned on
its own.
"""
from __future__ import annotations

from . import meter
from .base import LineStreamMeter, Option
from .serial_lines import LineReader, align, open_port

WRAP_US = 2 ** 32
HEADER = "# harness-power-stream"


def parse_sample(line: str):
    """(t_us, mV, mA) of a sample line; raises ValueError otherwise."""
    parts = line.split(",")
    if len(parts) != 3:
        raise ValueError(line)
    t_us = int(parts[0])
    if t_us < 0:
        raise ValueError(line)
    return t_us, float(parts[1]), float(parts[2])


def parse_header(line: str) -> dict:
    fields = {}
    for token in line[len(HEADER):].split():
        if "=" in token:
            k, v = token.split("=", 1)
            fields[k] = v
        else:
            fields.setdefault("version", token)
    return fields


@meter("serial_stream")
class SerialStreamMeter(LineStreamMeter):
    close_before_join = False
    OPTIONS = {
        "port": Option(str, required=True, help="a serial port or pyserial URL (socket://, rfc2217://, loop://)"),
        "baudrate": Option(int, 115200, minimum=50, help="the port's baud rate"),
        "rate_hz": Option(float, 1000.0, minimum=0.001, help="nominal sample rate (the stream's header overrides it)"),
        "read_timeout_s": Option(float, 0.2, minimum=0.01, maximum=10.0, help="seconds per read of the port"),
    }

    def __init__(self, options, source=None, label=None):
        super().__init__(options, source, label)
        self.nominal_rate_hz = options["rate_hz"]

    def open_stream(self):
        self._raw = []  # (segment, t_us unwrapped, arrival, W)
        self._segment, self._last_us, self._base_us = 0, None, 0
        self.header = {}
        reader = LineReader(open_port(self.options["port"], self.options["baudrate"], self.options["read_timeout_s"]))
        reader.port.reset_input_buffer()
        return reader

    def stream_ended(self, stream):
        return False  # an empty read is a timeout; the halt flag ends the loop

    def parse(self, line, t, trace):
        if line.startswith("#"):
            if line.startswith(HEADER):
                self.header = parse_header(line)
                rate = self.header.get("rate_hz")
                if rate:
                    trace.nominal_rate_hz = self.nominal_rate_hz = float(rate)
            return True
        t_us, mv, ma = parse_sample(line)
        if self._last_us is not None and t_us < self._last_us:
            if self._last_us > WRAP_US * 0.9 and t_us < WRAP_US * 0.1:
                self._base_us += WRAP_US
            else:
                self._segment += 1
                self._base_us = 0
                trace.notes.append("the MCU clock went backwards (a restart?): aligned as a new segment")
        self._last_us = t_us
        self._raw.append((self._segment, (self._base_us + t_us) / 1e6, t, mv * ma / 1e6))
        return True

    def finish(self, trace):
        spreads = []
        for seg in sorted({r[0] for r in self._raw}):
            rows = [r for r in self._raw if r[0] == seg]
            host, offset, spread = align([r[1] for r in rows], [r[2] for r in rows])
            trace.t.extend(host)
            trace.watts.extend(r[3] for r in rows)
            spreads.append(spread)
        if spreads:
            trace.extra["arrival_jitter_s"] = max(spreads)
        trace.extra["header"] = dict(self.header)
        trace.extra["port"] = self.options["port"]
