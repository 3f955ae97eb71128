"""Measurements as a pandas DataFrame: one row per measurement, plain columns."""
from __future__ import annotations

COLUMNS = ("id", "run_id", "created_at", "device", "model", "variant", "variant_id", "technique",
           "format", "emulated", "n", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms",
           "stddev_ms", "ci_low_ms", "ci_high_ms", "throughput_ips", "accuracy", "host_accuracy",
           "size_bytes", "storage_bytes", "n_params", "macs", "peak_rss_kb", "load_growth_kb",
           "flash_bytes", "ram_bytes", "energy_per_inference_j", "net_energy_per_inference_j",
           "avg_power_w", "model_sha256")


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
    }


def measurements_frame(measurements) -> "pd.DataFrame":
    import pandas as pd  # here: exports stream rows without paying pandas' import

    return pd.DataFrame([measurement_row(m) for m in measurements], columns=list(COLUMNS))
