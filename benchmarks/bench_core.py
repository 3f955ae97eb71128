"""Benchmarks of the measurement path itself (issue: end to end on this machine).

    python benchmarks/bench_core.py            # all three, figures printed
    python benchmarks/bench_core.py fidelity overhead

fidelity  the harness's median latency for the fp32 digits CNN (runner in a fresh process,
          as on a board) against an independent tight loop over an onnxruntime session with
          the same settings in this process; rounds alternate to cancel drift. Target: within 3%.
overhead  the runner's per-iteration timing overhead on an Identity model: what the timed
          loop adds outside the timed call (loop wall / n - mean latency) and the cost of the
          timer pair inside it (median of a no-op). Target: under 2 microseconds.
suite     wall time of `pytest suites/ --device local` over the demo zoo. Target: < 2 minutes
          on a 2-core machine.
Numbers are ratios within one run; the machine is shared and noisy, so nothing here asserts.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT as REPO
sys.path.insert(0, str(REPO))

from harness.ondevice import runner  # noqa: E402
from harness.devices.local import LocalDevice  # noqa: E402
from harness.inventory import Inventory  # noqa: E402

CNN = REPO / "models" / "digits_cnn.onnx"


def harness_median_ms(device, model: Path, seconds: float) -> float:
    raw = device.run({"model": device.deploy(model), "threads": 1, "inter_threads": 1, "warmup": 200,
                      "min_duration_s": seconds, "min_iterations": 1000})
    return statistics.median(raw["latencies_ns"]) / 1e6


def tight_loop_median_ms(model: Path, seconds: float) -> float:
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    feed = {"input": np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)}
    for _ in range(200):
        sess.run(None, feed)
    clock, samples = time.perf_counter_ns, []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = clock()
        sess.run(None, feed)
        samples.append(clock() - t0)
    return statistics.median(samples) / 1e6


def bench_fidelity(rounds: int = 3, seconds: float = 2.0) -> None:
    spec = Inventory(REPO / "devices").get("local")
    with LocalDevice(spec) as device:
        h, t = [], []
        for _ in range(rounds):  # alternate, so slow drift of a shared machine hits both
            h.append(harness_median_ms(device, CNN, seconds))
            t.append(tight_loop_median_ms(CNN, seconds))
    hm, tm = statistics.median(h), statistics.median(t)
    print(f"fidelity: harness median {hm * 1e3:.2f} us, tight loop median {tm * 1e3:.2f} us, "
          f"difference {100 * (hm - tm) / tm:+.2f}% (target within 3%); rounds harness "
          f"{[round(x * 1e3, 2) for x in h]} tight {[round(x * 1e3, 2) for x in t]}")


def bench_overhead(seconds: float = 2.0) -> None:
    import onnx
    import onnx.helper as oh

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "identity.onnx"
        graph = oh.make_graph([oh.make_node("Identity", ["x"], ["y"])], "identity",
                              [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])])
        model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(path))
        spec = Inventory(REPO / "devices").get("local")
        with LocalDevice(spec) as device:
            raw = device.run({"model": device.deploy(path), "min_duration_s": seconds, "min_iterations": 1000})
    lat = raw["latencies_ns"]
    outside = raw["loop"]["wall_ns"] / len(lat) - statistics.fmean(lat)
    noop, _ = runner.timed_loop(lambda: None, seconds / 2, 1000, 10_000_000)
    print(f"overhead: Identity median {statistics.median(lat) / 1e3:.2f} us over {len(lat)} iterations; "
          f"loop bookkeeping outside the timed call {outside:.0f} ns/iteration; timer pair inside "
          f"the timed call {statistics.median(noop):.0f} ns (target: under 2000 ns in total, "
          f"measured {outside + statistics.median(noop):.0f} ns)")


def bench_suite() -> None:
    env_python = sys.executable
    start = time.perf_counter()
    proc = subprocess.run([env_python, "-m", "pytest", "suites/", "--device", "local", "-q",
                           "-p", "no:cacheprovider", "--report", ""], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    wall = time.perf_counter() - start
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    print(f"suite: `pytest suites/ --device local` took {wall:.1f} s (target < 120 s): {tail}")


def main(argv: list[str]) -> int:
    chosen = argv or ["fidelity", "overhead", "suite"]
    for name in chosen:
        {"fidelity": bench_fidelity, "overhead": bench_overhead, "suite": bench_suite}[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
