#!/usr/bin/env python3
"""Energy per inference on an NVIDIA GPU with the NVML meter and onnxruntime's CUDA provider.

    python benchmarks/gpu_nvml_check.py [--size 2048] [--layers 8] [--seconds 5] [--idle 3]

Needs: an NVIDIA GPU, onnxruntime-gpu, onnx, nvidia-ml-py. Builds a small ONNX model (a
chain of MatMul+Relu on a size x size input, enough to load the GPU), then, in this
process, measures exactly as the harness does: an idle baseline with the meter, then a
timed loop bracketed by wall-clock edges, summarized by harness.power.energy.summarize.
Both NVML modes are run (the energy counter and power sampling) so they can be compared,
and the CPU provider too when --cpu is given. Prints one JSON document.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT

sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from harness.power.energy import summarize  # noqa: E402
from harness.power.nvml import NvmlMeter  # noqa: E402


def build_model(path: Path, size: int, layers: int) -> Path:
    import onnx
    import onnx.helper as oh
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(oh.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]))
        nodes.append(oh.make_node("Relu", [f"m{i}"], [f"r{i}"]))
        x = f"r{i}"
    nodes.append(oh.make_node("Identity", [x], ["y"]))
    graph = oh.make_graph(nodes, "matmul_chain",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [size, size])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [size, size])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def measure(model: Path, provider: str, mode: str, seconds: float, idle_s: float, size: int) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=[provider])
    used = sess.get_providers()
    feed = {"x": np.random.default_rng(1).standard_normal((size, size)).astype(np.float32)}
    # IO binding keeps the input on the GPU, so the loop measures the GPU, not PCIe copies.
    binding = sess.io_binding()
    device = "cuda" if provider == "CUDAExecutionProvider" else "cpu"
    x = ort.OrtValue.ortvalue_from_numpy(feed["x"], device, 0)
    binding.bind_ortvalue_input("x", x)
    binding.bind_output("y", device)

    def infer():
        sess.run_with_iobinding(binding)
        if device == "cuda":
            binding.synchronize_outputs()

    for _ in range(10):
        infer()

    meter = NvmlMeter({"index": 0, "mode": mode, "interval_ms": 50})
    try:
        meter.start()
        time.sleep(idle_s)
        idle = meter.stop()
        meter.start()
        start, n = time.time(), 0
        lat = []
        while time.time() - start < seconds:
            t0 = time.perf_counter()
            infer()
            lat.append(time.perf_counter() - t0)
            n += 1
        end = time.time()
        trace = meter.stop()
    finally:
        meter.close()
    out = summarize(trace, start, end, n, idle)
    out["provider_requested"], out["providers_used"] = provider, used
    out["median_latency_ms"] = float(np.median(lat) * 1e3)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--cpu", action="store_true", help="also run the CPU provider (GPU idle power then)")
    args = ap.parse_args()
    import onnxruntime as ort

    results = {"onnxruntime": ort.__version__, "available_providers": ort.get_available_providers(),
               "size": args.size, "layers": args.layers, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "chain.onnx", args.size, args.layers)
        providers = ["CUDAExecutionProvider"] + (["CPUExecutionProvider"] if args.cpu else [])
        for provider in providers:
            for mode in ("counter", "power"):
                try:
                    r = measure(model, provider, mode, args.seconds, args.idle, args.size)
                except Exception as exc:  # report and go on with the other combinations
                    r = {"provider_requested": provider, "error": f"{type(exc).__name__}: {exc}"}
                r["nvml_mode"] = mode
                r["gflop_per_inference"] = 2 * args.size ** 3 * args.layers * 1e-9
                results["runs"].append(r)
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
