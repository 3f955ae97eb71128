"""Linux hwmon INA219 / INA226 family (the ``ina2xx`` driver) in the board's supply.

    - meter: ina2xx
      sensors: [hwmon2]     # default: every hwmon whose name is an ina2xx chip
      use: auto             # auto | power (power1_input) | vi (in1_input x curr1_input)
      interval_ms: 20
      root: /

Files: ``in1_input`` bus voltage (mV), ``curr1_input`` current (mA), ``power1_input``
power (uW, computed by the chip). The chip averages over its own conversion time
(``update_interval``, ms); reading faster than that repeats values. Several sensors are
summed (one per rail) and kept as rails.
"""
from __future__ import annotations

from . import meter
from .base import MeterError, Option, PollingMeter
from .sysfs import read_number, require_found, unreadable

BASE = "/sys/class/hwmon"
CHIPS = ("ina219", "ina220", "ina226", "ina230", "ina231", "ina2xx")


def find_sensors(source) -> dict:
    """{hwmonN: chip name} of every ina2xx hwmon device."""
    out = {}
    try:
        entries = [e for e in source.listdir(BASE) if e.startswith("hwmon")]
    except OSError:
        return out
    for entry in entries:
        try:
            name = source.read_text(f"{BASE}/{entry}/name").strip()
        except OSError:
            continue
        if name in CHIPS:
            out[entry] = name
    return out


@meter("ina2xx")
class Ina2xxMeter(PollingMeter):
    on_board = True
    OPTIONS = {
        "sensors": Option(list, None, items=str,
                          help="hwmon directories (default: every hwmon named ina219/220/226/230/231)"),
        "use": Option(str, "auto", choices=("auto", "power", "vi"),
                      help="power (power1_input) or vi (in1_input x curr1_input)"),
        "interval_ms": Option(int, 20, minimum=1, maximum=60000, help="milliseconds between reads"),
        "root": Option(str, "/", help="prefix of every sysfs path (a test's temporary root)"),
    }

    def probe(self):
        found = find_sensors(self.source)
        wanted = self.options["sensors"] or sorted(found)
        require_found(self.label, "ina2xx hwmon sensor(s)", wanted, found,
                      f" under {BASE} (read through {self.source.describe()})")
        self.sensors = {}
        for h in wanted:
            d = f"{BASE}/{h}"
            names = self.source.listdir(d)
            use = self.options["use"]
            if use == "auto":
                use = "power" if "power1_input" in names else "vi"
            self.sensors[h] = (use, d)
        try:
            self.read()
        except PermissionError as exc:
            raise MeterError(unreadable(self.label, exc)) from None
        try:
            self.update_ms = read_number(self.source, f"{BASE}/{wanted[0]}/update_interval")
        except (OSError, ValueError):
            self.update_ms = None

    def read(self):
        rails = {}
        for h, (use, d) in self.sensors.items():
            if use == "power":
                rails[h] = read_number(self.source, f"{d}/power1_input") / 1e6
            else:
                rails[h] = read_number(self.source, f"{d}/in1_input") * read_number(self.source, f"{d}/curr1_input") / 1e6
        return sum(rails.values()), (rails if len(rails) > 1 else None)

    def finish(self, trace):
        trace.extra["sensors"] = {h: use for h, (use, _d) in self.sensors.items()}
        if self.update_ms:
            trace.averaging_s = self.update_ms / 1000.0
