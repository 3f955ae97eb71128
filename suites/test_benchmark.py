"""Every device measurement as a pytest-benchmark result: one per device and variant.

The statistics are the per-inference latencies the runner measured on the device; the
group is the device; memory, energy, accuracy and the model hash are in extra_info
(docs/pytest-benchmark.md). --benchmark-skip skips this test, --benchmark-only runs only
it, --benchmark-disable measures without recording.
"""
from harness.pytestplugin.benchmark_bridge import record


def test_device(benchmark, measure):
    record(benchmark, measure())
