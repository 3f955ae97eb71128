"""A plain-text table of measurements for the terminal (pytest summary, CLI)."""
from __future__ import annotations


def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def _memory(mem) -> str:
    """Peak RSS on a Linux board; flash + RAM on a microcontroller."""
    if mem.peak_rss_kb is not None:
        return f"{mem.peak_rss_mb:.1f} MB"
    if mem.flash_bytes is not None:
        return f"{mem.flash_bytes / 1024:.1f}K flash {(mem.ram_bytes or 0) / 1024:.1f}K RAM"
    return "-"


def summary_lines(measurements) -> list[str]:
    header = ("device", "variant", "n", "p50 ms", "p99 ms", "ci50 ms", "acc %", "memory", "size KB", "mJ/inf")
    rows = []
    for m in sorted(measurements, key=lambda m: (m.device, m.model, m.variant)):
        energy = (m.energy or {}).get("energy_per_inference_j")
        rows.append((
            m.device + (" (emulated)" if m.emulated else ""),
            m.variant_id,
            str(m.latency.n),
            _fmt(m.latency.p50_ms, ".4f"),
            _fmt(m.latency.p99_ms, ".4f"),
            f"{m.latency.median_ci_low_ms:.4f}-{m.latency.median_ci_high_ms:.4f}",
            _fmt(None if m.accuracy is None else 100 * m.accuracy, ".1f"),
            _memory(m.memory),
            _fmt(m.size_bytes / 1024, ".1f"),
            _fmt(None if energy is None else energy * 1e3, ".3f"),
        ))
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
