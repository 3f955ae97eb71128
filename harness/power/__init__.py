"""Power meters: one module per source, registered by name, named in the device YAML.

    power:
      - meter: tegrastats
        interval_ms: 100

Built-in meters are imported lazily (pyserial, pynvml, joulescope load only when used); a
third party registers with ``@meter("name")`` or through the ``harness.meters`` entry-point
group. The lead's measurement code calls ``open_meters`` once per device and then
``measure_with_meters`` per measurement.
"""
from __future__ import annotations

from contextlib import contextmanager

from ..errors import ConfigError
from ..devices import device_class
from ..registry import Registry, UnknownName
from .base import Meter, MeterError, PowerTrace
from .clock import Clock
from .energy import MIN_SAMPLES, summarize
from .source import LocalSource, Source

__all__ = ["meter", "meter_class", "known_meters", "meter_registry", "open_meters", "min_window_s",
           "measure_with_meters", "board_source", "Meter", "MeterError", "PowerTrace", "summarize",
           "Source", "LocalSource"]

# Each module registers its meter with ``@meter("name")``, the one place the name is
# written; they import no vendor package at import time (pyserial, pynvml, joulescope load
# when a meter starts), so importing them all to learn the names is cheap.
meter_registry = Registry("meter", "harness.meters", modules=(
    "harness.power.tegrastats", "harness.power.ina3221", "harness.power.rapl", "harness.power.nvml",
    "harness.power.vcgencmd", "harness.power.hwmon", "harness.power.serial_stream",
    "harness.power.lpm01a", "harness.power.joulescope", "harness.power.otii",
))

meter = meter_registry.register  # class decorator: register a Meter subclass under a name
known_meters = meter_registry.names
meter_class = meter_registry.get


def board_source(spec, device, root: str = "/") -> Source:
    """The Source an on-board meter reads through: the device's own ``meter_source(root)``
    (this machine for `local`, the board's connection for `ssh`); this machine when there
    is no device (a meter checked on its own)."""
    if device is None:
        return LocalSource(root)
    source = device.meter_source(root)
    if source is None:
        raise MeterError(f"{spec.source}: device kind {spec.kind!r} cannot host on-board meters "
                         "(its driver offers no meter_source); use a controller-side meter")
    return source


def validate_entries(source, kind: str, entries) -> list:
    """(meter class, options) for each ``power:`` entry, checked as the device YAML is
    loaded: a typo in a meter name or option fails before any board is touched."""
    checked = []
    for i, entry in enumerate(entries):
        where = f"power[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("meter"), str):
            raise ConfigError(source, where, "a mapping with a 'meter' name", entry)
        name = entry["meter"]
        try:
            cls = meter_class(name)
        except UnknownName:
            expected, hint = meter_registry.expected(name)
            raise ConfigError(source, f"{where}.meter", expected, name, hint) from None
        options = cls.validate(entry, source, where)
        if cls.local_only and not device_class(kind).is_controller:
            raise ConfigError(source, f"{where}.meter", "a meter that can read this kind of device", name,
                              f"{name} reads the controller's own hardware in-process, so only a 'local' "
                              "device (the controller itself) can use it")
        checked.append((cls, options))
    return checked


def open_meters(spec, device=None, clock: Clock | None = None) -> list:
    """Validated, constructed (not started) meters for each ``power:`` entry of ``spec``;
    ``clock`` (default: the machine's) stamps their samples and times their reads."""
    meters = []
    for cls, options in validate_entries(spec.source, spec.kind, spec.power):
        source = board_source(spec, device, options.get("root") or "/") if cls.on_board else None
        m = cls(options, source=source, label=options.get("label"))
        if clock is not None:
            m.clock = clock
        meters.append(m)
    return meters


def min_window_s(meters, samples: int = MIN_SAMPLES) -> float:
    """How long the timed window must last so every meter gets ``samples`` samples (or
    counter polls) in it; the runner's min_duration_s should be at least this."""
    return max([m.min_window_s(samples) for m in meters] or [0.0])


@contextmanager
def _recording(meters, traces: list):
    """Start every meter; on leaving, stop every one that started (even after an error)."""
    started = []
    try:
        for m in meters:
            m.start()
            started.append(m)
        yield
    finally:
        errors = []
        for m in started:
            try:
                traces.append(m.stop())
            except Exception as exc:  # stop the others regardless
                errors.append(exc)
                traces.append(None)
        if errors:
            raise errors[0]


def measure_with_meters(meters, run_callable, idle_s: float | None = None, clock_offset_s: float = 0.0):
    """One measurement with power: an idle baseline, then the run, both recorded.

    Returns (raw, energies): ``raw`` is what ``run_callable()`` returned (the runner's
    document with ``window`` and ``loop``), ``energies`` one summarize() dict per meter.
    ``idle_s`` defaults to the longer of 2 s and min_window_s(meters). ``clock_offset_s``
    (board clock minus host clock; see ssh_source.clock_offset_s) moves the runner's window
    onto the meters' clock for boards whose clock is not the controller's. The idle
    baseline lasts ``idle_s`` on the first meter's clock (the one open_meters was given).
    """
    if not meters:
        return run_callable(), []
    if idle_s is None:
        idle_s = max(2.0, min_window_s(meters))
    idle_traces, run_traces = [], []
    with _recording(meters, idle_traces):
        meters[0].clock.sleep(idle_s)
    with _recording(meters, run_traces):
        raw = run_callable()
    window = raw["window"]
    n = int(raw["loop"]["iterations"])
    return raw, [summarize(trace, window["start_unix_s"], window["end_unix_s"], n, idle,
                           clock_offset_s=clock_offset_s)
                 for trace, idle in zip(run_traces, idle_traces)]
