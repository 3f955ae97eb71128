"""Jetson ``tegrastats``: board power from the rails it prints, every known line format.

    - meter: tegrastats
      interval_ms: 100                   # tegrastats --interval
      command: [tegrastats]              # argv; e.g. [sudo, -n, tegrastats] or a fake
      total: VDD_IN                      # optional: which rail is the board total
      rails: [VDD_CPU_GPU_CV, VDD_SOC]   # optional: restrict the rails summed / kept

Rails appear as ``NAME cur/avg`` (Nano, TX2, Xavier; mW implied), ``NAME curmW/avgmW``
(Orin, JetPack 5/6) or ``NAME curmW/avgmW/maxmW`` (JetPack 7). The first value, the
current reading, is used. Total = ``VDD_IN`` or ``POM_5V_IN`` when present (the input
rail already includes the others), else the sum of rails. Each line is timestamped on the
host when it arrives; tegrastats runs on the board, beside the runner, so the clocks agree.
"""
from __future__ import annotations

import re

from . import meter
from .base import LineStreamMeter, MeterError, Option, PowerTrace

# NAME v/v[/v] with optional mW on each value, ending at whitespace or end of line; the
# lookahead keeps "RAM 2046/3964MB" and "IRAM 0/252kB(lfb" out.
_RAIL = re.compile(r"(?<![\w@\[])([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
NOT_RAILS = ("RAM", "SWAP", "IRAM", "LFB")


def parse_line(line: str) -> dict:
    """{rail: milliwatts (current reading)} of one tegrastats line; empty if it has none."""
    return {m.group(1): int(m.group(2)) for m in _RAIL.finditer(line) if m.group(1) not in NOT_RAILS}


def total_mw(rails: dict, total: str | None = None, include=None) -> float | None:
    """The board's total in mW: the named/input rail if present, else the sum of rails."""
    if total:
        return rails.get(total)
    for name in INPUT_RAILS:
        if name in rails:
            return rails[name]
    chosen = [v for k, v in rails.items() if include is None or k in include]
    return sum(chosen) if chosen else None


@meter("tegrastats")
class TegrastatsMeter(LineStreamMeter):
    on_board = True
    OPTIONS = {
        "interval_ms": Option(int, 100, minimum=10, maximum=60000, help="tegrastats --interval"),
        "command": Option(list, ["tegrastats"], items=str,
                          help="the argv run on the board, e.g. [sudo, -n, tegrastats]"),
        "total": Option(str, None, help="the rail that is the board's total (e.g. VDD_IN); default: the rails summed"),
        "rails": Option(list, None, items=str, help="keep and sum only these rails"),
    }

    def __init__(self, options, source=None, label=None):
        super().__init__(options, source, label)
        self.nominal_rate_hz = 1000.0 / options["interval_ms"]

    @classmethod
    def cross_check(cls, options, source, where):
        if not options["command"]:
            raise cls.config_error(source, f"{where}.command", "a non-empty argv list", options["command"])

    def argv(self) -> list:
        argv = list(self.options["command"])
        if "--interval" not in argv:
            argv += ["--interval", str(self.options["interval_ms"])]
        return argv

    def open_stream(self):
        try:
            return self.source.popen(self.argv())
        except OSError as exc:
            raise MeterError(f"{self.label}: cannot start {self.argv()[0]!r} on the board: {exc}") from None

    def close_stream(self, stream):
        stream.close()

    def parse(self, line, t, trace: PowerTrace) -> bool:
        rails = parse_line(line)
        keep = self.options["rails"]
        if keep is not None:
            rails = {k: v for k, v in rails.items() if k in keep or k == self.options["total"]}
        total = total_mw(rails, self.options["total"], keep)
        if total is None:
            return False
        trace.t.append(t)
        trace.watts.append(total / 1000.0)
        n = len(trace.t)
        for name, mw in rails.items():
            series = trace.rails.setdefault(name, [float("nan")] * (n - 1))
            series.append(mw / 1000.0)
        for series in trace.rails.values():
            if len(series) < n:
                series.append(float("nan"))
        return True

    def finish(self, trace):
        trace.extra["command"] = self.argv()
