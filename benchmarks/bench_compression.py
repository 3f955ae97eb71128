"""Build every compression recipe on the demo MLP and CNN and print the measured table.

    python benchmarks/bench_compression.py                 # post-training (no torch needed)
    python benchmarks/bench_compression.py --fine-tune     # + the torch hook where it applies
    python benchmarks/bench_compression.py --markdown      # the table of docs/compression.md

Recipes come from models/digits_{mlp,cnn}_compress.yaml. Each variant is built fresh
through the technique registry (no cache, so the build time is real), with calibration
data and the sensitivity scans' evaluate() on the calibration part of the digits split;
top-1 is measured on the TEST part, which no build step sees.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from harness import datasets, zoo  # noqa: E402
from harness.compress import BuildContext, get_technique  # noqa: E402
from harness.compress import onnx_graph as g  # noqa: E402

MANIFESTS = ("models/digits_mlp_compress.yaml", "models/digits_cnn_compress.yaml")
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


def evaluator(x, y):
    return lambda path: float((g.run(g.load(path), x).argmax(1) == y).mean())


def bench(manifest_path: Path, fine_tune: bool, folder: Path):
    manifest = zoo.load_manifest(manifest_path)
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
                           calibration=cal_x, calibration_labels=split["calibration"].y,
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
                     "n_params": stats["params"], "nonzero": stats["nonzero_params"],
                     "macs": stats["macs"], "sparse_macs": stats["sparse_macs"], "top1": top1,
                     "build_s": build_s,
                     "training": "fine-tuned" if result.info.get("fine_tuned") else "post-training",
                     "info": result.info})
    ref = next(r for r in rows if r["technique"] == "fp32")
    for r in rows:
        r["ratio"] = ref["file_bytes"] / r["storage_bytes"]
        r["delta"] = 100 * (r["top1"] - ref["top1"])
    return rows


def table(rows, markdown: bool) -> list[str]:
    header = ["model", "variant", "technique", "parameters", "file B", "storage B", "ratio",
              "params (non-zero)", "MACs (sparse)", "top-1 %", "Δ pt", "build s", "training"]
    body = []
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items()))
        nz = f"{r['n_params']}" + (f" ({r['nonzero']})" if r["nonzero"] != r["n_params"] else "")
        macs = f"{r['macs']}" + (f" ({r['sparse_macs']})" if r["sparse_macs"] != r["macs"] else "")
        body.append([r["model"], r["variant"], r["technique"], params, str(r["file_bytes"]),
                     str(r["storage_bytes"]), f"{r['ratio']:.2f}x", nz, macs, f"{100 * r['top1']:.2f}",
                     f"{r['delta']:+.2f}", f"{r['build_s']:.2f}", r["training"]])
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
    parser.add_argument("manifests", nargs="*", default=[str(ROOT / m) for m in MANIFESTS])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-compression-") as tmp:
        for m in args.manifests:
            rows += bench(Path(m), args.fine_tune, Path(tmp))
    print("\n".join(table(rows, args.markdown)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
