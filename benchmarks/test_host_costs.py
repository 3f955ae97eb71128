"""Host-side costs of the harness, with pytest-benchmark's ordinary ``benchmark`` fixture.

Nothing here touches a device: these are the controller's own costs around a run (building
variants, the runner's timing loop itself, summarizing samples, writing the report).
Run standalone:

    pytest benchmarks/                                   # table
    pytest benchmarks/ --benchmark-autosave              # keep a baseline in .benchmarks/
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=median:25%
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from harness import variant_build
from harness.ondevice import runner
from harness.measurement import Measurement, Memory
from harness.report import write_report
from harness.stats import summarize
from harness.store import Store
from repo_root import ROOT

MODELS = ROOT / "models"
REPORT_MEASUREMENTS = 300  # 3 devices x 10 variants x 10 runs


# ---------------------------------------------------------------- variant build


@pytest.mark.parametrize("technique", ["fp16", "int8-dynamic", "int8-static"])
def test_variant_build(benchmark, technique, tmp_path_factory):
    """One technique on the digits CNN, the cache cold every round (a fresh cache folder)."""
    manifest = variant_build.load_manifest(MODELS / "digits_cnn.yaml")
    recipe = manifest.recipe(technique)

    def cold_cache():
        return (manifest, recipe, tmp_path_factory.mktemp("cache")), {"evaluate_accuracy": False}

    variant = benchmark.pedantic(variant_build.build_variant, setup=cold_cache, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(variant=variant.id, size_bytes=variant.size_bytes)
    assert variant.path.is_file()


# ---------------------------------------------------------------- runner timing loop


def identity_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def identity_infer(tmp_path_factory):
    """One Identity inference through the runner's own onnxruntime backend, in-process."""
    path = identity_model(tmp_path_factory.mktemp("identity") / "identity.onnx")
    spec = {"model": str(path), "runtime": "onnxruntime", "threads": 1}
    backend = runner.make_backend(spec)
    backend.init(backend.load(str(path)))
    inputs, _ = backend.signature()
    return backend.prepare(runner.generate_inputs(inputs, spec))


LOOP_N = 1000


def test_timed_loop_identity(benchmark, identity_infer):
    """1000 timed Identity inferences: the floor under any latency the runner reports."""
    latencies, loop = benchmark(runner.timed_loop, identity_infer, 0.0, LOOP_N, LOOP_N)
    benchmark.extra_info.update(iterations=loop["iterations"], inner_median_ns=float(np.median(latencies)))
    assert loop["iterations"] == LOOP_N


def test_timed_loop_overhead(benchmark):
    """1000 iterations around a no-op: the loop's own cost (two clock reads and an append)."""
    latencies, loop = benchmark(runner.timed_loop, lambda: None, 0.0, LOOP_N, LOOP_N)
    benchmark.extra_info.update(iterations=loop["iterations"], inner_median_ns=float(np.median(latencies)))
    assert loop["iterations"] == LOOP_N


def test_summarize_100k_samples(benchmark):
    """Statistics of a long run (percentiles, Tukey fences, bootstrap CI of the median)."""
    samples = np.random.default_rng(0).lognormal(np.log(50_000), 0.2, 100_000).astype(np.int64)
    stats = benchmark(summarize, samples)
    assert stats.n == 100_000


# ---------------------------------------------------------------- report generation


def synthetic(device: str, variant: str, run: int, run_id: str, stats, samples) -> Measurement:
    return Measurement(
        device=device, model="digits-cnn", variant=variant, technique=variant, format="onnx",
        latency=stats, samples_ns=samples, timings_ms={"init": 5.0}, memory=Memory(peak_rss_kb=60_000),
        accuracy=0.9 + 0.001 * run, accuracy_n=360, host_accuracy=0.95, size_bytes=5000 + 100 * run,
        storage_bytes=5000, n_params=954, macs=11904, model_sha256=f"{variant:0>64}"[-64:],
        emulated=False, settings={}, provenance={}, run_id=run_id)


@pytest.fixture(scope="module")
def report_store(tmp_path_factory):
    """A store with a few hundred measurements (summaries computed once per device x variant)."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'h.sqlite'}")
    rng = np.random.default_rng(1)
    cases = list(itertools.product(["rpi5", "jetson", "x86"], [f"v{i}" for i in range(10)]))
    summaries = {}
    for device, variant in cases:
        samples = rng.lognormal(np.log(rng.uniform(1e4, 1e6)), 0.1, 500).astype(np.int64).tolist()
        summaries[device, variant] = (summarize(samples), samples)
    for run in range(REPORT_MEASUREMENTS // len(cases)):
        run_id = store.start_run(tag=f"synthetic-{run}")
        for device, variant in cases:
            store.save(synthetic(device, variant, run, run_id, *summaries[device, variant]))
    return store


def test_report_generation(benchmark, report_store, tmp_path):
    out = tmp_path / "report.html"
    benchmark.pedantic(write_report, args=(report_store, out), rounds=3, warmup_rounds=1)
    benchmark.extra_info["measurements"] = REPORT_MEASUREMENTS
    assert out.stat().st_size > 0
