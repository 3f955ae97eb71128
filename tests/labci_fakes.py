"""Synthetic measurements for store, gate and report tests (no device needed)."""
from __future__ import annotations

import hashlib

import numpy as np

from harness.measurement import Measurement, Memory
from harness.stats import summarize


def fake_measurement(device="local", model="digits-cnn", variant="fp32", median_ns=1e6, n=2000,
                     seed=0, accuracy=0.975, rss_kb=60000, run_id=None, technique=None, rounds=1):
    """`rounds` > 1: the samples split into that many rounds of one campaign (same machine)."""
    rng = np.random.default_rng(seed)
    samples = (median_ns * rng.lognormal(0.0, 0.1, n)).astype(np.int64).tolist()
    sizes = [n // rounds] * (rounds - 1) + [n - (n // rounds) * (rounds - 1)] if rounds > 1 else []
    return Measurement(
        device=device, model=model, variant=variant, technique=technique or variant, format="onnx",
        latency=summarize(samples, sizes or None), samples_ns=samples, round_sizes=sizes, timings_ms={"first_inference": 1.0},
        memory=Memory(peak_rss_kb=rss_kb), accuracy=accuracy, accuracy_n=360, host_accuracy=accuracy,
        size_bytes=5000, storage_bytes=5000, n_params=1000, macs=10000,
        model_sha256=hashlib.sha256(f"{model}/{variant}".encode()).hexdigest(),  # one variant, one file
        emulated=False, settings={"threads": 1}, provenance={}, run_id=run_id)
