"""Raspberry Pi 5 PMIC rails through ``vcgencmd pmic_read_adc``.

    - meter: vcgencmd
      interval_ms: 100               # one call takes ~23 ms on a Pi 5
      command: [vcgencmd]            # argv; the meter appends pmic_read_adc

Output lines: ``VDD_CORE_A current(7)=0.81262990A`` and ``VDD_CORE_V volt(15)=0.72000000V``.
Power = sum over rails with both a current (``_A``) and a voltage (``_V``) of I x V. The
PMIC does not measure the 5 V input current (``EXT5V_V`` has no current), so this is the
power of the PMIC's rails, below the board's wall power (conversion losses, USB, the
5 V peripherals): compare variants on it, do not quote it as board power. Each reading
is timestamped at the middle of the call. Older Pis have no sensor: use an external meter.
"""
from __future__ import annotations

import re

from . import meter
from .base import MeterError, Option, PollingMeter

_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-+0-9.eE]+)[AV]\s*$")


def parse_pmic(text: str):
    """({rail: W}, bad_lines) of one ``pmic_read_adc`` output."""
    amps, volts, bad = {}, {}, 0
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            bad += 1
            continue
        (amps if m.group(2) == "A" else volts)[m.group(1)] = float(m.group(3))
    return {r: amps[r] * volts[r] for r in amps if r in volts}, bad


@meter("vcgencmd")
class VcgencmdMeter(PollingMeter):
    on_board = True
    OPTIONS = {
        "interval_ms": Option(int, 100, minimum=10, maximum=60000,
                              help="milliseconds between calls (one takes ~23 ms on a Pi 5)"),
        "command": Option(list, ["vcgencmd"], items=str,
                          help="the argv run on the board; the meter appends pmic_read_adc"),
        "timeout_s": Option(float, 2.0, minimum=0.1, help="seconds one call may take"),
    }

    @classmethod
    def cross_check(cls, options, source, where):
        if not options["command"]:
            raise cls.config_error(source, f"{where}.command", "a non-empty argv list", options["command"])

    def argv(self):
        return list(self.options["command"]) + ["pmic_read_adc"]

    def probe(self):
        self.bad_lines = 0
        try:
            self.read()
        except (OSError, ValueError) as exc:
            raise MeterError(f"{self.label}: {' '.join(self.argv())} failed on the board: {exc}") from None

    def read(self):
        rails, bad = parse_pmic(self.source.run(self.argv(), timeout=self.options["timeout_s"]))
        self.bad_lines += bad
        if not rails:
            raise ValueError("no rail with both current and voltage in the output")
        return sum(rails.values()), rails

    def finish(self, trace):
        trace.bad_lines += self.bad_lines
        trace.notes.append("PMIC rails only: the 5 V input current is not measured")
