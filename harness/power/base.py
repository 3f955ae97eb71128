"""The Meter protocol and the PowerTrace it returns.

    start()           begin sampling (or reading a counter); host wall-clock timestamps
    stop() -> trace   end it and hand back everything read since start()
    close()           release the port, process or library handle

Two helpers cover most meters: ``PollingMeter`` calls ``read()`` on a background thread
at a fixed period (sysfs files, counters, one-shot programs), ``LineStreamMeter`` reads
lines from a streaming program or port on a background thread (tegrastats, serial).
Every wait has a timeout; stop() always ends the thread and the process. Stamps and the
waits between reads come from the meter's ``clock`` (harness/power/clock.py).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import ClassVar

from .. import config_fields
from ..errors import ConfigError, HarnessError
from ..registry import Option, check_options  # noqa: F401  (Option: meters declare OPTIONS with it)
from . import energy
from .clock import SYSTEM_CLOCK, Clock


class MeterError(HarnessError):
    """A meter cannot be started or read (missing file, no permission, no device)."""


@dataclass
class PowerTrace:
    """What one meter read between start() and stop(), on the host's wall clock.

    method "trapezoid": ``watts`` aligned with ``t``; method "counter": ``joules`` is the
    cumulative (already unwrapped) energy aligned with ``t``. ``rails`` holds per-rail
    series aligned with ``t`` in the same unit. ``gaps`` are spans where the meter
    delivered nothing (failed reads, a dead stream); ``bad_lines`` counts unparsable input.
    """

    source: str
    method: str = "trapezoid"
    t: list = field(default_factory=list)
    watts: list = field(default_factory=list)
    joules: list = field(default_factory=list)
    rails: dict = field(default_factory=dict)
    gaps: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    nominal_rate_hz: float | None = None
    averaging_s: float = 0.0      # the meter's own averaging window (NVML on Ampere: 1 s)
    resolution_j: float = 0.0     # counter resolution
    started: float | None = None
    stopped: float | None = None
    bad_lines: int = 0
    extra: dict = field(default_factory=dict)


class Meter:
    """Base of every power source. Subclasses are registered by name with ``@meter("name")``
    (which sets ``name``) and set ``OPTIONS`` (field -> registry.Option) and ``on_board``
    (True when it reads files or runs programs on the board)."""

    name: ClassVar[str] = ""
    on_board: ClassVar[bool] = False
    local_only: ClassVar[bool] = False  # reads this machine's hardware in-process (NVML)
    OPTIONS: ClassVar[dict] = {}
    nominal_rate_hz: float | None = None
    # Stamps and waits; open_meters replaces it with the clock it is given (a test's own).
    clock: Clock = SYSTEM_CLOCK

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "check" in vars(cls):  # the name before cross_check: its checks would be skipped silently
            raise TypeError(f"{cls.__module__}.{cls.__qualname__}: Meter.check is now cross_check; rename it")

    def __init__(self, options: dict, source=None, label: str | None = None):
        self.options = options
        self.source = source
        self.label = label or self.name

    # -- validation at the door
    @classmethod
    def validate(cls, entry: dict, source, where: str) -> dict:
        out = check_options(source, where, entry, cls.OPTIONS, also=("meter", "label"))
        out["label"] = config_fields.get(source, where, entry, "label", str, None)
        cls.cross_check(out, source, where)
        return out

    @classmethod
    def cross_check(cls, options: dict, source, where: str) -> None:
        """Cross-field checks; raise ConfigError naming the field."""

    @staticmethod
    def config_error(source, field, expected, got, hint=""):
        return ConfigError(source, field, expected, got, hint)

    # -- the protocol
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> PowerTrace:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def min_window_s(self, samples: int = energy.MIN_SAMPLES) -> float:
        """How long a timed window must be to hold enough samples (or counter polls)."""
        return energy.min_window_for_rate(self.effective_rate_hz(), samples)

    def effective_rate_hz(self) -> float | None:
        return self.nominal_rate_hz

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class PollingMeter(Meter):
    """Calls ``read()`` every ``interval_s`` on a thread.

    ``read()`` returns (value, rails): value in W (trapezoid) or cumulative J (counter),
    rails a dict of the same unit or None. A read that raises leaves a gap (recorded, the
    first message of each kind kept in notes). ``probe()`` runs once in start() so a
    missing file or a permission problem is reported at once, not as an empty trace.
    """

    method: ClassVar[str] = "trapezoid"
    max_consecutive_errors: ClassVar[int] = 50

    def __init__(self, options, source=None, label=None):
        super().__init__(options, source, label)
        self.interval_s = options.get("interval_ms", 100) / 1000.0
        self._thread = None
        self._stop = threading.Event()

    def effective_rate_hz(self):
        return 1.0 / self.interval_s

    def probe(self) -> None:
        self.read()

    def read(self):
        raise NotImplementedError

    def new_trace(self) -> PowerTrace:
        rate = None if self.method == "counter" else 1.0 / self.interval_s
        return PowerTrace(source=self.label, method=self.method, nominal_rate_hz=rate)

    def start(self):
        if self._thread is not None:
            raise MeterError(f"{self.label}: start() called twice without stop()")
        self.probe()
        self._trace = self.new_trace()
        self._trace.started = self.clock.time()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"meter-{self.label}", daemon=True)
        self._thread.start()

    def _loop(self):
        trace = self._trace
        errors = 0
        failing_since = None
        clock = self.clock
        next_t = clock.monotonic()
        while not self._stop.is_set():
            before = clock.time()
            try:
                value, rails = self.read()
            except Exception as exc:  # a meter must not die silently: note it, leave a gap
                errors += 1
                failing_since = failing_since or before
                message = f"read failed: {type(exc).__name__}: {exc}"
                if message not in trace.notes:
                    trace.notes.append(message)
                if errors >= self.max_consecutive_errors:
                    trace.notes.append(f"gave up after {errors} consecutive failed reads")
                    trace.gaps.append((failing_since, clock.time()))
                    return
            else:
                now = (before + clock.time()) / 2.0  # the middle of the read
                if failing_since is not None:
                    trace.gaps.append((failing_since, now))
                    failing_since = None
                errors = 0
                self._append(trace, now, value, rails)
            next_t += self.interval_s
            delay = next_t - clock.monotonic()
            if delay < 0:  # fell behind: do not burst to catch up
                next_t = clock.monotonic()
                delay = 0
            clock.wait(self._stop, delay)
        if failing_since is not None:
            trace.gaps.append((failing_since, clock.time()))

    def _append(self, trace, now, value, rails):
        trace.t.append(now)
        (trace.joules if self.method == "counter" else trace.watts).append(float(value))
        for name, v in (rails or {}).items():
            series = trace.rails.setdefault(name, [math.nan] * (len(trace.t) - 1))
            series.append(float(v))
        for name, series in trace.rails.items():  # a rail missing this time: NaN
            if len(series) < len(trace.t):
                series.append(math.nan)

    def stop(self) -> PowerTrace:
        if self._thread is None:
            raise MeterError(f"{self.label}: stop() without start()")
        self._stop.set()
        self._thread.join(timeout=max(5.0, 3 * self.interval_s))
        alive = self._thread.is_alive()
        self._thread = None
        trace = self._trace
        if not alive and not (trace.notes and trace.notes[-1].startswith("gave up")):
            # A last reading at stop, so the window's end (just before) is bracketed: a
            # counter needs it, and sampled power gets its edge.
            try:
                before = self.clock.time()
                value, rails = self.read()
                self._append(trace, (before + self.clock.time()) / 2.0, value, rails)
            except Exception as exc:
                trace.notes.append(f"final read failed: {type(exc).__name__}: {exc}")
        trace.stopped = self.clock.time()
        self.finish(trace)
        return trace

    def finish(self, trace: PowerTrace) -> None:
        """Hook: add extras (e.g. peak GPU memory) to the trace."""

    def close(self):
        if self._thread is not None:
            self.stop()


class LineStreamMeter(Meter):
    """Reads text lines from a stream on a thread, timestamping each on arrival.

    Subclasses implement ``open_stream()`` (returns an object with ``readline()`` returning
    '' at end, and ``close()``) and ``parse(line, t_arrival, trace)`` which appends samples
    and returns False for a line it cannot understand (counted in ``bad_lines``).
    """

    method: ClassVar[str] = "trapezoid"
    keep_bad: ClassVar[int] = 5
    # A process is ended to unblock its reader; a port is read with a timeout, so the
    # reader sees the halt flag first and the port is closed after it has stopped.
    close_before_join: ClassVar[bool] = True

    def __init__(self, options, source=None, label=None):
        super().__init__(options, source, label)
        self._thread = None
        self._stream = None
        self._halt = threading.Event()
        self._went_silent = None

    def new_trace(self) -> PowerTrace:
        return PowerTrace(source=self.label, method=self.method, nominal_rate_hz=self.nominal_rate_hz)

    def open_stream(self):
        raise NotImplementedError

    def parse(self, line: str, t: float, trace: PowerTrace) -> bool:
        raise NotImplementedError

    def start(self):
        if self._thread is not None:
            raise MeterError(f"{self.label}: start() called twice without stop()")
        self._trace = self.new_trace()
        self._halt.clear()
        self._stream = self.open_stream()
        self._trace.started = self.clock.time()
        self._went_silent = None  # when the stream ended or died before stop()
        self._thread = threading.Thread(target=self._loop, name=f"meter-{self.label}", daemon=True)
        self._thread.start()

    def _loop(self):
        trace, stream = self._trace, self._stream
        while not self._halt.is_set():
            try:
                line = stream.readline()
            except Exception as exc:  # the stream died (closed at stop, or the peer vanished)
                if not self._halt.is_set():
                    trace.notes.append(f"stream failed: {type(exc).__name__}: {exc}")
                    self._went_silent = self.clock.time()
                break
            if isinstance(line, bytes):
                line = line.decode("ascii", "replace")
            if line == "" or line is None:
                if self.stream_ended(stream):
                    if not self._halt.is_set():
                        trace.notes.append("the stream ended before stop()")
                        self._went_silent = self.clock.time()
                    break
                continue
            if self._halt.is_set():
                break  # output after stop() (e.g. a shell's "Terminated") is not data
            text = line.strip()
            if not text:
                continue
            now = self.clock.time()  # one stamp per line, on arrival
            try:
                ok = self.parse(text, now, trace)
            except (ValueError, IndexError):
                ok = False
            if not ok:
                trace.bad_lines += 1
                if trace.bad_lines <= self.keep_bad:
                    trace.notes.append(f"unparsable line: {text[:120]!r}")

    def stream_ended(self, stream) -> bool:
        """'' from readline: end of stream (a process), or just a read timeout (a port)."""
        return True

    def stop(self) -> PowerTrace:
        if self._thread is None:
            raise MeterError(f"{self.label}: stop() without start()")
        self._halt.set()
        try:
            if self.close_before_join:
                self.close_stream(self._stream)
        finally:
            self._thread.join(timeout=5.0)
            self._thread = None
            if not self.close_before_join:
                self.close_stream(self._stream)
            self._stream = None
        trace = self._trace
        trace.stopped = self.clock.time()
        if self._went_silent is not None:  # the meter itself reports the silence to the end
            trace.gaps.append((self._went_silent, trace.stopped))
        if trace.bad_lines > self.keep_bad:
            trace.notes.append(f"{trace.bad_lines} unparsable lines in all")
        self.finish(trace)
        return trace

    def close_stream(self, stream) -> None:
        stream.close()

    def finish(self, trace: PowerTrace) -> None:
        pass

    def close(self):
        if self._thread is not None:
            self.stop()
