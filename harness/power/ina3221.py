"""Jetson INA3221 rail monitors read straight from sysfs (no tegrastats process).

    - meter: ina3221
      interval_ms: 50
      layout: auto          # auto | iio (old L4T ina3221x) | hwmon (new ina3221 driver)
      total: VDD_IN         # optional; default VDD_IN / POM_5V_IN if present, else the sum
      rails: [...]          # optional: restrict the rails kept and summed
      root: /               # tests point this at a temporary tree

Old L4T (Nano, TX2, Xavier on JetPack 4):
    /sys/bus/i2c/drivers/ina3221x/<bus>-00<addr>/iio:device<N>/in_power<K>_input (mW)
    .../rail_name_<K>
New driver (Orin, JetPack 5+):
    /sys/bus/i2c/drivers/ina3221/<bus>-00<addr>/hwmon/hwmon<N>/in<K>_label,
    in<K>_input (mV), curr<K>_input (mA); P = mV * mA / 1000 mW. ``in7`` (the sum
    channel) and channels labelled ``NC`` are skipped.
"""
from __future__ import annotations

import re

from . import meter
from .base import MeterError, Option, PollingMeter
from .sysfs import read_number, unreadable
from .tegrastats import total_mw

OLD = "/sys/bus/i2c/drivers/ina3221x"
NEW = "/sys/bus/i2c/drivers/ina3221"
_CHIP = re.compile(r"^\d+-00[0-9a-fA-F]{2}$")


def discover(source, layout: str = "auto") -> list:
    """[(rail, kind, paths)] for every channel found; kind 'iio' (mW file) or 'hwmon'
    ((mV file, mA file)). Raises MeterError naming what was looked for."""
    found = []
    if layout in ("auto", "iio"):
        found = _discover_iio(source)
    if not found and layout in ("auto", "hwmon"):
        found = _discover_hwmon(source)
    if not found:
        where = {"iio": OLD, "hwmon": NEW}.get(layout, f"{OLD} or {NEW}")
        raise MeterError(f"ina3221: no INA3221 channels under {where} "
                         f"(read through {source.describe()}); the Nano 2GB has none")
    return found


def _chips(source, base):
    try:
        return [c for c in source.listdir(base) if _CHIP.match(c)]
    except OSError:
        return []


def _discover_iio(source):
    found = []
    for chip in _chips(source, OLD):
        chip_dir = f"{OLD}/{chip}"
        for dev in [d for d in source.listdir(chip_dir) if d.startswith("iio:device")]:
            d = f"{chip_dir}/{dev}"
            names = source.listdir(d)
            for k in sorted(int(m.group(1)) for m in map(re.compile(r"^in_power(\d+)_input$").match, names) if m):
                label = f"{chip}:{k}"
                if f"rail_name_{k}" in names:
                    label = source.read_text(f"{d}/rail_name_{k}").strip() or label
                found.append((label, "iio", f"{d}/in_power{k}_input"))
    return found


def _discover_hwmon(source):
    found = []
    for chip in _chips(source, NEW):
        base = f"{NEW}/{chip}/hwmon"
        try:
            hwmons = [h for h in source.listdir(base) if h.startswith("hwmon")]
        except OSError:
            continue
        for h in hwmons:
            d = f"{base}/{h}"
            names = source.listdir(d)
            for k in sorted(int(m.group(1)) for m in map(re.compile(r"^in(\d+)_input$").match, names) if m):
                if k == 7 or f"curr{k}_input" not in names:
                    continue  # in7 is the summed channel; in4..in6 are shunt voltages
                label = source.read_text(f"{d}/in{k}_label").strip() if f"in{k}_label" in names else f"{chip}:in{k}"
                if label.upper() == "NC":
                    continue
                found.append((label, "hwmon", (f"{d}/in{k}_input", f"{d}/curr{k}_input")))
    return found


@meter("ina3221")
class Ina3221Meter(PollingMeter):
    on_board = True
    OPTIONS = {
        "interval_ms": Option(int, 50, minimum=1, maximum=60000, help="milliseconds between reads"),
        "layout": Option(str, "auto", choices=("auto", "iio", "hwmon"), help="sysfs layout: iio, hwmon, or found"),
        "total": Option(str, None, help="the rail that is the board's total; default: the rails summed"),
        "rails": Option(list, None, items=str, help="keep and sum only these rails"),
        "root": Option(str, "/", help="prefix of every sysfs path (a test's temporary root)"),
    }

    def probe(self):
        self.channels = discover(self.source, self.options["layout"])
        keep = self.options["rails"]
        if keep is not None:
            self.channels = [c for c in self.channels if c[0] in keep or c[0] == self.options["total"]]
            if not self.channels:
                raise MeterError(f"{self.label}: none of rails {keep} found")
        try:
            self.read()
        except PermissionError as exc:
            raise MeterError(unreadable(self.label, exc)) from None

    def read(self):
        rails = {}
        for label, kind, paths in self.channels:
            if kind == "iio":
                rails[label] = read_number(self.source, paths)
            else:
                rails[label] = read_number(self.source, paths[0]) * read_number(self.source, paths[1]) / 1000.0
        total = total_mw(rails, self.options["total"], self.options["rails"])
        if total is None:
            raise MeterError(f"{self.label}: total rail {self.options['total']!r} not found")
        return total / 1000.0, {k: v / 1000.0 for k, v in rails.items()}
