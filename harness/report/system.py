"""Per-device system description, in the spirit of MLPerf's: the hardware, OS, runtime versions,
the measurement settings and the machine's state while measuring, from the provenance every
measurement carries. Values that differ between a device's measurements are all listed.
Every value is HTML-escaped."""
from __future__ import annotations

import html

SETTINGS = ("threads", "inter_threads", "warmup", "min_duration_s", "min_iterations", "max_iterations", "rounds",
            "optimization", "cpu_arena", "providers")


def _values(items) -> str:
    seen = []
    for item in items:
        if item not in (None, "", [], {}) and item not in seen:
            seen.append(item)
    return ", ".join(" ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in seen)


def _range(values, fmt: str) -> str:
    values = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return ""
    low, high = min(values), max(values)
    return fmt.format(low) if low == high else f"{fmt.format(low)} – {fmt.format(high)}"


def describe(measurements) -> dict:
    """{device: [(aspect, text)]} for the report's devices."""
    by_device: dict = {}
    for m in measurements:
        by_device.setdefault(m.device, []).append(m)
    out = {}
    for device, group in sorted(by_device.items()):
        prov = [m.provenance or {} for m in group]
        spec = [p.get("device") or {} for p in prov]
        info = [p.get("device_info") or {} for p in prov]
        board = [p.get("board") or {} for p in prov]
        windows = [w for m in group for w in (m.machine or {}).get("rounds", []) if w]
        emulated = any(m.emulated for m in group)
        rows = [
            ("kind", _values(s.get("kind") or i.get("kind") for s, i in zip(spec, info))),
            ("description", _values(s.get("description") for s in spec)),
            ("emulated", (("yes: " + (_values(s.get("emulation") for s in spec) or "guest-time"))
                          if emulated else "no")),
            ("hardware", _values(" · ".join(str(x) for x in (b.get("cpu"), b.get("machine") or i.get("machine"),
                                                             f"{b['cpu_count']} CPUs" if b.get("cpu_count") else None,
                                                             f"{b['mem_total_kb'] / 1024 ** 2:.1f} GB RAM"
                                                             if b.get("mem_total_kb") else None) if x)
                                 for b, i in zip(board, info))),
            ("OS", _values(b.get("platform") or " ".join(str(x) for x in (i.get("system"), i.get("release")) if x)
                           for b, i in zip(board, info))),
            ("device facts", _values(", ".join(f"{k}: {v}" for k, v in sorted(i.items())
                                                if k not in ("kind", "hostname", "machine", "system", "release")
                                                and isinstance(v, (str, int, float)))
                                      for i in info)),
            ("runtimes", _values(f"{(p.get('runtime') or {}).get('name')} {(p.get('runtime') or {}).get('version')}"
                                 if p.get("runtime") else None for p in prov)),
            ("Python · numpy · runner", _values(" · ".join(str(x) for x in (b.get("python"), p.get("numpy_version"),
                                                                           p.get("runner_version")) if x)
                                                for b, p in zip(board, prov))),
            ("harness · git", _values(" · ".join(str(x) for x in ((p.get("controller") or {}).get("harness_version"),
                                                                 ((p.get("controller") or {}).get("git_commit") or "")[:12])
                                                 if x) for p in prov)),
            ("settings", "; ".join(f"{k}: {_values(m.settings.get(k) for m in group)}" for k in SETTINGS
                                   if _values(m.settings.get(k) for m in group))),
            ("other processes (cores)", _range([w.get("other_cores") for w in windows], "{:.2f}")),
            ("hypervisor steal (cores)", _range([w.get("steal_cores") for w in windows], "{:.2f}")),
            ("load average", _range([w.get("loadavg_before") for w in windows], "{:.2f}")),
            ("CPU frequency change", _range([w.get("freq_change_max") for w in windows], "{:.1%}")),
            ("governor", _values(g for w in windows for g in (w.get("governors") or []))),
            ("temperature (°C)", _range([w.get("temp_max_c") for w in windows], "{:.0f}")),
            ("throttling", _values(f for w in windows for f in (w.get("rpi_throttled") or []))
             or _range([w.get("cgroup_throttled_s") for w in windows], "{:.3f} s (cgroup)")),
        ]
        out[device] = [(k, v) for k, v in rows if v]
    return out


def system_html(measurements) -> str:
    described = describe(measurements)
    if not described:
        return ""
    aspects = []
    for rows in described.values():
        aspects += [k for k, _ in rows if k not in aspects]
    devices = list(described)
    head = "".join(f"<th>{html.escape(d)}</th>" for d in devices)
    body = "".join(
        f"<tr><th>{html.escape(a)}</th>"
        + "".join(f"<td>{html.escape(dict(described[d]).get(a, '–'))}</td>" for d in devices) + "</tr>"
        for a in aspects)
    return ("<h2 id='systems'>Systems</h2><table class='verdicts system' id='system'><thead><tr><th></th>"
            f"{head}</tr></thead><tbody>{body}</tbody></table>"
            "<p class='meta'>Machine state: the range over every timed round (harness/machine.py).</p>")
