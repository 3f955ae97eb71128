"""The results table for the terminal (pytest summary, CLI): fastest first within a device,
each variant's latency against its model's fp32 with the tie rules of harness.decide, and
the validity verdict; the reasons of invalid measurements and each device's noise floor
follow the table."""
from __future__ import annotations

import math

REFERENCE_TECHNIQUE = "fp32"


def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def _memory(mem) -> str:
    """Peak RSS on a Linux board; flash + RAM on a microcontroller."""
    if mem.peak_rss_kb is not None:
        return f"{mem.peak_rss_mb:.1f} MB"
    if mem.flash_bytes is not None:
        return f"{mem.flash_bytes / 1024:.1f}K flash {(mem.ram_bytes or 0) / 1024:.1f}K RAM"
    return "-"


def time_unit(values_ms) -> tuple[str, float]:
    """One unit for a table: (name, factor from ms)."""
    finite = sorted(v for v in values_ms if v is not None and v > 0)
    typical = finite[len(finite) // 2] if finite else 1.0
    if typical < 0.1:
        return "us", 1e3
    if typical >= 1000:
        return "s", 1e-3
    return "ms", 1.0


def _sig(value: float) -> str:
    """Three significant digits, never scientific for the ranges latencies take."""
    if value == 0:
        return "0"
    digits = max(0, 2 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{digits}f}"


def _against_reference(m, reference, floor) -> str:
    from .. import decide

    if reference is None or reference is m:
        return "ref" if reference is m else "-"
    relation, ratio = decide.latency_relation(reference, m, floor)
    if relation == "tied":
        return "tied" + (" (same bytes)" if ratio.identical else "")
    return decide.speed_text(relation, ratio)


def results_lines(measurements) -> list[str]:
    from .. import decide   # numpy: imported when there is something to show

    measurements = list(measurements)
    floors = decide.noise_floor(measurements)
    refs = {(m.device, m.model): m for m in measurements if m.technique == REFERENCE_TECHNIQUE
            and m.variant != decide.CONTROL_VARIANT}
    header = ("device", "variant", "rounds", "n", "p50", "95% CI", "vs fp32", "acc %", "stored KB", "memory",
              "mJ/inf", "verdict")
    rows, notes = [], []
    for device in sorted({m.device for m in measurements}):
        group = sorted((m for m in measurements if m.device == device), key=lambda m: m.latency.p50_ms)
        unit, factor = time_unit([m.latency.p50_ms for m in group])
        for m in group:
            energy = (m.energy or {}).get("energy_per_inference_j")
            lat = m.latency
            rows.append((
                m.device + (" (emulated)" if m.emulated else ""),
                m.variant_id,
                str(lat.rounds),
                str(lat.n),
                f"{_sig(lat.p50_ms * factor)} {unit}",
                f"{_sig(lat.median_ci_low_ms * factor)}-{_sig(lat.median_ci_high_ms * factor)}",
                _against_reference(m, refs.get((m.device, m.model)), floors.get(m.device, 0.02)),
                _fmt(None if m.accuracy is None else 100 * m.accuracy, ".1f"),
                _fmt(m.storage_bytes / 1024, ".1f"),
                _memory(m.memory),
                _fmt(None if energy is None else energy * 1e3, ".3f"),
                m.verdict.upper() if m.verdict != "valid" else "valid",
            ))
            for reason in m.validity.get("reasons", []):
                notes.append(f"INVALID {m.device} {m.variant_id}: {reason}")
        notes.append(f"{device}: differences under {100 * floors.get(device, 0.02):.1f}% are ties (noise floor"
                     + ("; raised by its A/A control pair)" if any(m.variant == decide.CONTROL_VARIANT
                                                                    for m in group) else ")"))
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i in (0, 1, 6, 11) else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
    return [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows] + notes
