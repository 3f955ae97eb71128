"""Build every compression recipe on the demo MLP and CNN and print the measured table.

    python benchmarks/bench_compression.py                 # post-training (no torch needed)
    python benchmarks/bench_compression.py --fine-tune     # + the torch hook where it applies
    python benchmarks/bench_compression.py --markdown      # the table of docs/compression.md
    python benchmarks/bench_compression.py --speed         # CPU latency on a larger random CNN

Recipes come from models/compression/digits_{mlp,cnn}.yaml. Each variant is built fresh
through the technique registry (no cache, so the build time is real), with calibration
data and the sensitivity scans' evaluate() on the calibration part of the digits split;
top-1 is measured on the TEST part, which no build step sees. Latency: median of 500
batch-1 inferences with onnxruntime on one CPU thread of this machine.
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

from harness import datasets, variant_build  # noqa: E402
from harness.compress import BuildContext, get_technique  # noqa: E402
from harness.compress import onnx_graph as g  # noqa: E402

MANIFESTS = ("models/compression/digits_mlp.yaml", "models/compression/digits_cnn.yaml")
FINE_TUNABLE = {"prune-magnitude", "prune-structured", "deep-compression", "ternary", "low-rank"}

# what the papers report, for the table beside ours
PAPER = {
    "prune-magnitude": "Han 2015: 9x (AlexNet), 13x (VGG-16) fewer weights, no top-1 loss after retraining",
    "prune-structured": "Li 2017: -34% FLOPs VGG-16 on CIFAR-10, ~0 loss after retraining",
    "deep-compression": "Han 2016: 35x (AlexNet), 49x (VGG-16), 40x LeNet; no loss (retrained)",
    "fixed-point": "Qiu 2016: 8/8-bit dynamic fixed point, < 1% top-1 loss on VGG-16",
    "low-rank": "Zhang 2015: 4x speed-up VGG-16, +0.3% top-5 error (with fine-tuning)",
    "ternary": "Zhu 2016: ~16x smaller; ResNet-20 CIFAR-10 -0.04 pt... +0.36 pt (trained)",
    "mixed-precision": "(HAQ/HAWQ-style) ~ int8 size at ~fp32 accuracy",
    "fp32": "reference",
}


def latency_us(path, x, runs=500) -> float:
    """Median wall time of one batch-1 inference, onnxruntime on one CPU thread."""
    sess = g.session(g.load(path))
    name = sess.get_inputs()[0].name
    feed = {name: x[:1].astype(np.float32)}
    for _ in range(20):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - start)
    return 1e6 * float(np.median(times))


def evaluator(x, y):
    return lambda path: float((g.run(g.load(path), x).argmax(1) == y).mean())


def bench(manifest_path: Path, fine_tune: bool, folder: Path):
    manifest = variant_build.load_manifest(manifest_path)
    split = datasets.digits_split()
    base = g.load(manifest.base)
    shape = [d.dim_value or 1 for d in base.graph.input[0].type.tensor_type.shape.dim]
    reshape = lambda a: a.reshape([len(a)] + shape[1:])
    cal_x, test_x = reshape(split["calibration"].x), reshape(split["test"].x)
    hook = None
    if fine_tune:
        from harness.compress.torch_train import make_hook
        hook = make_hook(manifest.dataset)
    rows = []
    for recipe in manifest.variants:
        if recipe.file:
            continue
        out = folder / f"{manifest.name}__{recipe.name}.onnx"
        tune = hook if recipe.technique in FINE_TUNABLE else None
        ctx = BuildContext(base=manifest.base, out=out, params=dict(recipe.params), source=recipe.where,
                           calibration=cal_x,
                           input_name=base.graph.input[0].name, input_shape=shape,
                           evaluate=evaluator(cal_x, split["calibration"].y), train_hook=tune)
        start = time.perf_counter()
        result = get_technique(recipe.technique).build(ctx)
        build_s = time.perf_counter() - start
        stats = g.model_stats(result.path, shape)
        top1 = evaluator(test_x, split["test"].y)(result.path)
        rows.append({"model": manifest.name.replace("-compress", ""), "variant": recipe.name,
                     "technique": recipe.technique, "params": recipe.params,
                     "file_bytes": stats["file_bytes"],
                     "storage_bytes": result.storage_bytes or stats["file_bytes"],
                     "weight_bytes": result.storage_bytes or stats["weight_bytes"],
                     "n_params": stats["params"], "nonzero": stats["nonzero_params"],
                     "macs": stats["macs"], "sparse_macs": stats["sparse_macs"], "top1": top1,
                     "build_s": build_s, "latency_us": latency_us(result.path, test_x),
                     "training": "fine-tuned" if result.info.get("fine_tuned") else "post-training",
                     "info": result.info})
    ref = next(r for r in rows if r["technique"] == "fp32")
    for r in rows:
        # one definition of each ratio (harness/variant_table.py): weights vs weights, file vs file
        r["weight_ratio"] = ref["weight_bytes"] / r["weight_bytes"]
        r["file_ratio"] = ref["file_bytes"] / r["file_bytes"]
        r["delta"] = 100 * (r["top1"] - ref["top1"])
    return rows


def synthetic_cnn(seed=0):
    """A random conv net big enough for CPU time to show (3x32x32 -> 64 -> 128 -> 128 -> 10)."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    inits, nodes, x, c = [], [], "input", 3
    for i, out in enumerate((64, 128, 128)):
        inits += [numpy_helper.from_array(rng.normal(0, (2 / (9 * c)) ** 0.5, (out, c, 3, 3)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(out, np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        x, c = f"r{i}", out
    inits += [numpy_helper.from_array(rng.normal(0, 0.1, (10, c)).astype(np.float32), "fc.w"),
              numpy_helper.from_array(np.zeros(10, np.float32), "fc.b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
              helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1)]
    graph = helper.make_graph(nodes, "synthetic_cnn",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8        # what onnxruntime reads, whatever this onnx writes by default
    return model


SPEED_RECIPES = [("fp32", {}), ("prune-magnitude", {"sparsity": 0.5, "sensitivity": False}),
                 ("prune-magnitude", {"sparsity": 0.9, "sensitivity": False}),
                 ("prune-structured", {"ratio": 0.5}), ("low-rank", {"rank": 16, "method": "svd"}),
                 ("fixed-point", {"weight_bits": 8, "activation_bits": 8}),
                 ("mixed-precision", {"budget": 0.3}), ("fp16", {}), ("int8-static", {})]


def speed(folder: Path, markdown: bool) -> list[str]:
    """CPU latency of each technique on a CNN big enough to measure (random weights: no accuracy)."""
    import onnx
    model = synthetic_cnn()
    base = folder / "synthetic_cnn.onnx"
    onnx.save(model, str(base))
    x = np.random.default_rng(1).random((64, 3, 32, 32), dtype=np.float32)
    header = ["technique", "parameters", "file B", "storage B", "MACs", "latency µs", "vs fp32"]
    rows, ref = [], None
    for name, params in SPEED_RECIPES:
        out = folder / f"speed-{len(rows)}.onnx"
        ctx = BuildContext(base=base, out=out, params=dict(params), source=f"speed ({name})", calibration=x,
                           input_name="input", input_shape=[1, 3, 32, 32])
        result = get_technique(name).build(ctx)
        stats = g.model_stats(result.path, [1, 3, 32, 32])
        lat = latency_us(result.path, x, runs=200)
        ref = ref or lat
        rows.append([name, ", ".join(f"{k}={v}" for k, v in params.items()), str(stats["file_bytes"]),
                     str(result.storage_bytes or stats["file_bytes"]), str(stats["macs"]), f"{lat:.0f}",
                     f"{ref / lat:.2f}x"])
    if markdown:
        line = lambda cells: "| " + " | ".join(cells) + " |"
        return [line(header), line(["---"] * len(header))] + [line(r) for r in rows]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [header] + rows]


def table(rows, markdown: bool) -> list[str]:
    header = ["model", "variant", "technique", "parameters", "weights B", "weight ratio", "file B", "file ratio",
              "params (non-zero)", "MACs (sparse)", "top-1 %", "Δ pt", "latency µs", "build s", "training"]
    body = []
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items()))
        nz = f"{r['n_params']}" + (f" ({r['nonzero']})" if r["nonzero"] != r["n_params"] else "")
        macs = f"{r['macs']}" + (f" ({r['sparse_macs']})" if r["sparse_macs"] != r["macs"] else "")
        body.append([r["model"], r["variant"], r["technique"], params, str(r["weight_bytes"]),
                     f"{r['weight_ratio']:.2f}x", str(r["file_bytes"]), f"{r['file_ratio']:.2f}x", nz, macs, f"{100 * r['top1']:.2f}",
                     f"{r['delta']:+.2f}", f"{r['latency_us']:.1f}", f"{r['build_s']:.2f}", r["training"]])
    if markdown:
        line = lambda cells: "| " + " | ".join(cells) + " |"
        return [line(header), line(["---"] * len(header))] + [line(b) for b in body]
    widths = [max(len(x[i]) for x in body + [header]) for i in range(len(header))]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))
    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fine-tune", action="store_true", help="use the torch hook (pip install torch)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", help="also write the rows (with each variant's info) here")
    parser.add_argument("--speed", action="store_true",
                        help="instead: CPU latency of each technique on a larger random CNN")
    parser.add_argument("manifests", nargs="*", default=[str(ROOT / m) for m in MANIFESTS])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-compression-") as tmp:
        if args.speed:
            print("\n".join(speed(Path(tmp), args.markdown)))
            return 0
        for m in args.manifests:
            rows += bench(Path(m), args.fine_tune, Path(tmp))
    print("\n".join(table(rows, args.markdown)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
