"""Measurements made of plain numbers, for tests of what comes after the device (store, gates,
reports): the one place tests make a Measurement without a device."""
import hashlib

import numpy as np

from harness.measurement import Measurement, Memory
from harness.stats import summarize


def fake_measurement(device="local", model="digits-cnn", variant="fp32", median_ms=1.0, spread=0.02, n=200,
                     seed=0, accuracy=0.97, rss_kb=60000, size_bytes=5000, run_id=None, technique=None,
                     rounds=1, emulated=False, energy=None, samples_ns=None, settings=None, provenance=None,
                     model_sha256=None):
    """One Measurement of `n` samples scattered (lognormal, `spread`) around `median_ms`, or of
    the given `samples_ns`; `rounds` > 1 splits them into that many rounds of one campaign
    (same machine). `settings`, `provenance` and `model_sha256` replace the plain defaults."""
    if samples_ns is not None:
        samples, n = [int(ns) for ns in samples_ns], len(samples_ns)
    else:
        rng = np.random.default_rng(seed)
        samples = (median_ms * 1e6 * rng.lognormal(0.0, spread, n)).astype(np.int64).tolist()
    sizes = [n // rounds] * (rounds - 1) + [n - (n // rounds) * (rounds - 1)] if rounds > 1 else []
    return Measurement(
        device=device, model=model, variant=variant, technique=technique or variant, format="onnx",
        latency=summarize(samples, sizes or None), samples_ns=samples, round_sizes=sizes,
        timings_ms={"first_inference": 1.0}, memory=Memory(peak_rss_kb=rss_kb, load_growth_kb=1000),
        accuracy=accuracy, accuracy_n=360, host_accuracy=accuracy, size_bytes=size_bytes,
        storage_bytes=size_bytes, n_params=954, macs=11904,
        model_sha256=model_sha256 or hashlib.sha256(f"{model}/{variant}".encode()).hexdigest(),  # one variant, one file
        emulated=emulated, settings=dict(settings or {"threads": 1}),
        provenance=provenance if provenance is not None else {"board": {}}, energy=energy, run_id=run_id)


def measured_in_rounds(round_medians_ms, *, variant="fp32", device="local", model="digits-cnn", n=400,
                       spread=0.02, seed=0, sha="0" * 64, campaign="run-1:local:1", run_id="run-1",
                       accuracy=0.97, settings=None, machine_rounds=None):
    """A Measurement taken in len(round_medians_ms) rounds of one campaign: round r's samples
    scatter (lognormal, `spread`) around round_medians_ms[r]."""
    from harness.validity import Thresholds, assess

    rng = np.random.default_rng(seed)
    rounds = [(m * rng.lognormal(0.0, spread, n) * 1e6).astype(np.int64) for m in round_medians_ms]
    samples = np.concatenate(rounds)
    sizes = [n] * len(rounds)
    latency = summarize(samples, sizes)
    windows = machine_rounds or [{}] * len(rounds)
    return Measurement(
        device=device, model=model, variant=variant, technique=variant, format="onnx",
        latency=latency, samples_ns=samples.tolist(), timings_ms={"first_inference": 1.0},
        memory=Memory(peak_rss_kb=60000, load_growth_kb=1000), accuracy=accuracy, accuracy_n=360,
        host_accuracy=accuracy, size_bytes=5000, storage_bytes=5000, n_params=954, macs=11904,
        model_sha256=sha, emulated=False, settings=dict(settings or {"threads": 1}),
        provenance={"campaign": {"id": campaign}}, run_id=run_id, round_sizes=sizes,
        machine={"rounds": windows},
        validity=assess(latency, windows, [{}] * len(rounds), Thresholds()))


def verdict(windows, threads=1, rounds=(1.0, 1.01, 0.99), loops=None, thresholds=None):
    """The validity verdict of a measurement in `rounds` (p50 ms each) over machine `windows`."""
    from harness.validity import Thresholds, assess

    m = measured_in_rounds(list(rounds))
    return assess(m.latency, windows, loops or [{}] * len(windows), thresholds or Thresholds(), threads=threads)
