"""Linux RAPL through powercap: cumulative ``energy_uj`` counters, polled and unwrapped.

    - meter: rapl
      domains: [package-0, package-1]   # default: every top-level zone except psys
      interval_ms: 100                  # polling keeps every wrap visible
      root: /

Zones are ``/sys/class/powercap/intel-rapl:N`` (packages, psys) and ``intel-rapl:N:M``
(core, uncore, dram). Each counter wraps at its ``max_energy_range_uj``; the meter polls
so that consecutive reads are far less than one wrap apart and unwraps each domain
(harness.power.energy.counter_delta). ``psys`` covers the whole platform and overlaps
the packages, so it is only summed when asked for by name. Since the 2020 PLATYPUS fix
(CVE-2020-8694) ``energy_uj`` is readable by root only.
"""
from __future__ import annotations

import re

from . import meter
from .base import MeterError, Option, PollingMeter
from .energy import counter_delta
from .sysfs import read_number, require_found, unreadable

BASE = "/sys/class/powercap"
_ZONE = re.compile(r"^intel-rapl:\d+(:\d+)?$")
ROOT_ONLY_HINT = ("energy_uj is root-only on kernels since the 2020 PLATYPUS fix (CVE-2020-8694): "
                  "run as root, or grant read access (e.g. a udev rule or "
                  "'chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj', reset at reboot)")


def zones(source) -> dict:
    """{domain name: zone directory} of every RAPL zone (names made unique by zone id)."""
    try:
        entries = [e for e in source.listdir(BASE) if _ZONE.match(e)]
    except OSError:
        raise MeterError(f"rapl: no {BASE} (read through {source.describe()}); "
                         "RAPL needs an Intel (or recent AMD) CPU and the intel_rapl driver") from None
    out = {}
    for entry in entries:
        try:
            name = source.read_text(f"{BASE}/{entry}/name").strip()
        except OSError:
            name = entry
        out[name if name not in out else f"{name}@{entry}"] = (entry, ":" not in entry.split("intel-rapl:", 1)[1])
    return out


@meter("rapl")
class RaplMeter(PollingMeter):
    on_board = True
    method = "counter"
    OPTIONS = {
        "domains": Option(list, None, items=str, help="powercap zones (default: every top-level zone except psys)"),
        "interval_ms": Option(int, 100, minimum=1, maximum=10000, help="milliseconds between counter polls"),
        "root": Option(str, "/", help="prefix of every sysfs path (a test's temporary root)"),
    }

    def probe(self):
        found = zones(self.source)
        wanted = self.options["domains"]
        if wanted is None:
            wanted = [n for n, (_e, top) in found.items() if top and not n.startswith("psys")]
        require_found(self.label, "RAPL domain(s)", wanted, found,
                      f" under {BASE} (read through {self.source.describe()})")
        self.domains = {}
        for name in wanted:
            d = f"{BASE}/{found[name][0]}"
            try:
                wrap = read_number(self.source, f"{d}/max_energy_range_uj")
            except OSError:
                wrap = None
            self.domains[name] = (f"{d}/energy_uj", wrap)
        try:
            self._last = {n: read_number(self.source, p) for n, (p, _w) in self.domains.items()}
        except PermissionError as exc:
            raise MeterError(unreadable(self.label, exc, ROOT_ONLY_HINT)) from None
        self._total = {n: 0.0 for n in self.domains}
        self.wraps = 0

    def read(self):
        for name, (path, wrap) in self.domains.items():
            raw = read_number(self.source, path)
            if raw < self._last[name]:
                self.wraps += 1
            self._total[name] += counter_delta(self._last[name], raw, wrap) / 1e6
            self._last[name] = raw
        return sum(self._total.values()), dict(self._total)

    def new_trace(self):
        trace = super().new_trace()
        trace.resolution_j = 1e-6
        return trace

    def finish(self, trace):
        trace.extra["rapl_domains"] = list(self.domains)
        trace.extra["counter_wraps"] = self.wraps
