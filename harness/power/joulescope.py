"""Joulescope JS110 / JS220 on the controller side (optional extra: ``pip install joulescope``).

    - meter: joulescope
      sampling_frequency: 1000     # output rate after the instrument's decimation, Hz
      serial_number: null          # pick one instrument when several are attached
      timestamp_input: null        # gpi0 | gpi1: the DUT's timestamp pin (MLPerf Tiny energy mode)

With ``timestamp_input`` the instrument puts that general-purpose input into the current's
least significant bit (``current_lsb``), as EEMBC's Joulescope driver for the MLPerf Tiny
energy runner does; its falling edges become ``trace.extra["events"]`` (``{"t", "edge":
"fal"}``, the LPM01A meter's format), each at its sample's time.

Streams current and voltage (the package's N x 2 float32 [A, V] data) between start()
and stop(); power = A x V. Sample k is placed at host time (start() time + k / rate):
the start's USB latency (ms) is the alignment uncertainty. The package is imported
only when the meter starts. Written against joulescope 1.x's documented API; not run
against an instrument here (none attached).
"""
from __future__ import annotations

import importlib

from . import meter
from .base import Meter, MeterError, Option, PowerTrace


def load(name: str, pip_name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MeterError(f"this meter needs the optional package {pip_name!r} "
                         f"(pip install {pip_name}, or the project's 'meters' extra)") from None


@meter("joulescope")
class JoulescopeMeter(Meter):
    OPTIONS = {
        "sampling_frequency": Option(int, 1000, minimum=1, maximum=2_000_000, help="samples per second"),
        "serial_number": Option(str, None, help="which Joulescope (default: the only one)"),
        "timestamp_input": Option(str, None, choices=("gpi0", "gpi1"),
                                  help="the general-purpose input the DUT's timestamp pin is on (energy mode)"),
    }
    js = None  # the module; tests inject a fake

    def __init__(self, options, source=None, label=None):
        super().__init__(options, source, label)
        self.nominal_rate_hz = float(options["sampling_frequency"])
        self._device = None

    def _open(self):
        if self._device is not None:
            return
        js = self.js = self.js or load("joulescope", "joulescope")
        try:
            if self.options["serial_number"]:
                found = [d for d in js.scan(config="auto")
                         if self.options["serial_number"] in str(getattr(d, "device_serial_number", d))]
                if len(found) != 1:
                    raise RuntimeError(f"{len(found)} instruments match serial {self.options['serial_number']!r}")
                device = found[0]
            else:
                device = js.scan_require_one(config="auto")
            device.open()
            device.parameter_set("sampling_frequency", self.options["sampling_frequency"])
            if self.options["timestamp_input"]:
                device.parameter_set("current_lsb", self.options["timestamp_input"])
        except RuntimeError as exc:
            raise MeterError(f"{self.label}: {exc}") from None
        self._device = device

    def start(self):
        self._open()
        self._t0 = self.clock.time()
        self._device.start()
        self._started = self._t0

    def stop(self) -> PowerTrace:
        dev = self._device
        dev.stop()
        stopped = self.clock.time()
        start_id, end_id = dev.stream_buffer.sample_id_range
        edges = bool(self.options["timestamp_input"])
        fields = ["current", "voltage"] + (["current_lsb"] if edges else [])
        data = dev.stream_buffer.samples_get(start_id, end_id, fields=fields)
        amps = data["signals"]["current"]["value"]
        volts = data["signals"]["voltage"]["value"]
        rate = self.nominal_rate_hz
        trace = PowerTrace(source=self.label, nominal_rate_hz=rate, started=self._started, stopped=stopped)
        trace.t = [self._t0 + k / rate for k in range(len(amps))]
        trace.watts = [float(a) * float(v) for a, v in zip(amps, volts)]
        if edges:
            level = [int(b) for b in data["signals"]["current_lsb"]["value"]]
            trace.extra["events"] = [{"t": trace.t[k], "edge": "fal"} for k in range(1, len(level))
                                     if level[k - 1] and not level[k]]
        trace.notes.append("aligned on the host time of start(): USB start latency is not corrected")
        return trace

    def close(self):
        if self._device is not None:
            try:
                self._device.close()
            finally:
                self._device = None
