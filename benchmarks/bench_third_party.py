"""Every technique on models nobody here made: built or refused (with the reason), ratios,
agreement with the base, and p50 latency on the `local` device.

    python benchmarks/bench_third_party.py                  # the table (markdown) of docs/compression.md
    python benchmarks/bench_third_party.py --models magika  # one model
    python benchmarks/bench_third_party.py --no-latency     # builds and agreement only

The models come out of the PyPI wheels that ship them (magika 1.0.3, silero-vad 6.2.3,
rapidocr-onnxruntime 1.4.4), fetched with `pip download --no-deps` into
~/.cache/edge-harness (tests/thirdparty.py). Inputs are generated from each model's
signature within the ranges below (no labelled data): agreement is the smallest per-sample
cosine over every output (cos) and the largest absolute error (max|err|) on 8 inputs.
Weight ratio = base weight bytes / variant weight bytes (parameters as stored, or the
technique's stored form); file ratio = base file / variant file (what a device loads).
Latency: the `local` device kind (the on-device runner in a fresh process, one thread),
median over at least 0.5 s after 5 warm-up runs.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import thirdparty  # noqa: E402
from harness import variant_build  # noqa: E402
from harness.errors import HarnessError  # noqa: E402

# the detector at a smaller page than its usual 960 to keep a run short on a laptop
SHAPES = {"ppocrv4-det": [1, 3, 320, 320]}
TECHNIQUES = [
    ("fp32", {}), ("fp16", {}), ("int8-dynamic", {}), ("int8-static", {"samples": 8}),
    ("prune-magnitude", {"sparsity": 0.5}), ("prune-structured", {"ratio": 0.1}),
    ("low-rank", {"energy": 0.9, "method": "svd"}), ("deep-compression", {"sparsity": 0.5}),
    ("ternary", {}), ("fixed-point", {}), ("mixed-precision", {"budget": 0.5}),
]


def manifest(folder: Path, model: str) -> Path:
    variants = [{"name": t, "technique": t, **({"params": p} if p else {})} for t, p in TECHNIQUES]
    return thirdparty.manifest(folder, model, variants, samples=8, first_shape=SHAPES.get(model))


def p50_ms(variant, inputs) -> float:
    from harness.devices import open_device
    from harness.inventory import parse_device

    spec = parse_device({"kind": "local"}, Path(tempfile.gettempdir()) / "local.yaml", "local")
    with open_device(spec) as dev:
        raw = dev.run({"model": dev.deploy(variant.path), "inputs": inputs, "min_duration_s": 0.5,
                       "min_iterations": 20, "warmup": 5})
    samples = sorted(raw["latencies_ns"])
    return samples[len(samples) // 2] / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(thirdparty.MODELS))
    ap.add_argument("--no-latency", action="store_true")
    args = ap.parse_args()
    print("| model | technique | result | weight ratio | file ratio | cos min | max abs err | p50 ms | build s |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-third-party-") as tmp:
        for model in args.models:
            folder = Path(tmp) / model
            folder.mkdir()
            m = variant_build.load_manifest(manifest(folder, model))
            base = variant_build.build_variant(m, m.recipe("fp32"), folder / "cache")
            for recipe in m.variants:
                start = time.perf_counter()
                try:
                    v = variant_build.build_variant(m, recipe, folder / "cache")
                except HarnessError as exc:
                    reason = str(exc).split("): ", 1)[-1].replace("|", "/").replace("\n", " ")[:160]
                    print(f"| {model} | {recipe.name} | refused: {reason} | | | | | | "
                          f"{time.perf_counter() - start:.1f} |", flush=True)
                    continue
                a = v.agreement or {}
                latency = "-" if args.no_latency else f"{p50_ms(v, list(m.inputs)):.3f}"
                print(f"| {model} | {recipe.name} | built | {base.weight_bytes / v.weight_bytes:.2f}x | "
                      f"{base.size_bytes / v.size_bytes:.2f}x | {a.get('cosine_min', float('nan')):.4f} | "
                      f"{a.get('max_abs', float('nan')):.3g} | {latency} | {v.build_s:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
