"""Measurements as a pandas DataFrame: one row per measurement, plain columns.

Beside each measurement's own figures, the decisions of harness.decide within its run,
device and model: the latency against the model's fp32 (or "tied"), and membership of the
latency and stored-size Pareto fronts under the tie rules.
"""
from __future__ import annotations

from . import decide

# one measurement's own columns (an export streams these row by row)
ROW_COLUMNS = ("id", "run_id", "created_at", "device", "model", "variant", "variant_id", "technique",
           "format", "emulated", "n", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms",
           "stddev_ms", "ci_low_ms", "ci_high_ms", "throughput_ips", "accuracy", "host_accuracy",
           "size_bytes", "storage_bytes", "n_params", "macs", "peak_rss_kb", "load_growth_kb",
           "flash_bytes", "ram_bytes", "energy_per_inference_j", "net_energy_per_inference_j",
           "avg_power_w", "model_sha256", "rounds", "verdict", "validity_reasons")
# decided across a run's measurements (harness.decide): the frame adds them
COLUMNS = ROW_COLUMNS + ("vs_fp32", "pareto_latency", "pareto_size", "is_control")


def decisions(measurements) -> dict:
    """{id(m): {vs_fp32, pareto_latency, pareto_size}} within each (run, device, model); the
    A/A control twin is measured for the noise floor and is on no front."""
    measurements = list(measurements)
    floors = decide.noise_floor(measurements)
    groups: dict = {}
    for m in measurements:
        groups.setdefault((m.run_id, m.device, m.model), []).append(m)
    out = {}
    for (_, device, _), group in groups.items():
        floor = floors.get(device, 0.02)
        ranked = [m for m in group if m.variant != decide.CONTROL_VARIANT]
        reference = next((m for m in ranked if m.technique == "fp32"), None)
        latency_front = dict(zip(map(id, ranked), decide.pareto_front(ranked, "latency", floor)))
        size_front = dict(zip(map(id, ranked), decide.pareto_front(ranked, "storage_bytes", floor)))
        for m in group:
            if reference is None or m is reference:
                versus = "reference" if m is reference else None
            else:
                relation, ratio = decide.latency_relation(reference, m, floor)
                versus = "tied" if relation == "tied" else decide.speed_text(relation, ratio)
            out[id(m)] = {"vs_fp32": versus, "pareto_latency": latency_front.get(id(m), False),
                          "pareto_size": size_front.get(id(m), False),
                          "is_control": m.variant == decide.CONTROL_VARIANT}
    return out


def measurement_row(m) -> dict:
    """One measurement's plain columns (the frame's row, an export's CSV line); no samples."""
    lat, mem, energy = m.latency, m.memory, m.energy or {}
    return {
        "id": m.id, "run_id": m.run_id, "created_at": m.created_at, "device": m.device,
        "model": m.model, "variant": m.variant, "variant_id": m.variant_id,
        "technique": m.technique, "format": m.format, "emulated": m.emulated, "n": lat.n,
        "mean_ms": lat.mean_ms, "p50_ms": lat.p50_ms, "p90_ms": lat.p90_ms, "p95_ms": lat.p95_ms,
        "p99_ms": lat.p99_ms, "p999_ms": lat.p999_ms, "stddev_ms": lat.stddev_ms,
        "ci_low_ms": lat.median_ci_low_ms, "ci_high_ms": lat.median_ci_high_ms,
        "throughput_ips": lat.throughput_ips, "accuracy": m.accuracy,
        "host_accuracy": m.host_accuracy, "size_bytes": m.size_bytes,
        "storage_bytes": m.storage_bytes, "n_params": m.n_params, "macs": m.macs,
        "peak_rss_kb": mem.peak_rss_kb, "load_growth_kb": mem.load_growth_kb,
        "flash_bytes": mem.flash_bytes, "ram_bytes": mem.ram_bytes,
        "energy_per_inference_j": energy.get("energy_per_inference_j"),
        "net_energy_per_inference_j": energy.get("net_energy_per_inference_j"),
        "avg_power_w": energy.get("avg_power_w"), "model_sha256": m.model_sha256,
        "rounds": lat.rounds, "verdict": m.verdict,
        "validity_reasons": "; ".join((m.validity or {}).get("reasons", [])),
    }


def measurements_frame(measurements) -> "pd.DataFrame":
    import pandas as pd  # here: exports stream rows without paying pandas' import

    measurements = list(measurements)
    decided = decisions(measurements)   # across the measurements: not in a streamed row
    return pd.DataFrame([{**measurement_row(m), **decided[id(m)]} for m in measurements], columns=list(COLUMNS))
