"""Models nobody here made, from the PyPI wheels that ship them (tests/thirdparty.py).

For each model and technique: a changed, loadable variant whose outputs agree with the base
within the budget stated below, or a refusal whose reason is stated below. Counts come
from the manifest's input shapes and match an independent count made from onnxruntime's
own tensor shapes; no ratio exceeds its bit-width ceiling; PP-OCRv4 rec is measured.
"""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

import thirdparty
from harness import variant_build
from harness.errors import HarnessError

# technique -> (params, minimum cosine of every output over the generated inputs)
TECHNIQUES = {
    "fp16": ({}, 0.999),
    "int8-dynamic": ({}, 0.95),
    "int8-static": ({"samples": 4}, 0.9),
    "prune-magnitude": ({"sparsity": 0.3}, 0.9),
    "low-rank": ({"energy": 0.95, "method": "svd"}, 0.5),     # post-training SVD: a loose budget
    "deep-compression": ({"sparsity": 0.3, "conv_bits": 8, "fc_bits": 8}, 0.9),
    "prune-structured": ({"ratio": 0.05}, 0.0),    # post-training channel removal: changed and finite only
}
SUBGRAPHS = r"inside (control-flow )?subgraphs"
# (model, technique) -> the reason a refusal must give; every other pair must build
REFUSED = {
    ("silero-vad", "fp16"): r"fp16: onnxruntime cannot load the float16 graph",
    ("silero-vad", "int8-dynamic"): SUBGRAPHS, ("silero-vad", "int8-static"): SUBGRAPHS,
    ("silero-vad", "prune-magnitude"): SUBGRAPHS, ("silero-vad", "low-rank"): SUBGRAPHS,
    ("silero-vad", "deep-compression"): SUBGRAPHS, ("silero-vad", "prune-structured"): SUBGRAPHS,
    ("magika", "prune-structured"): r"no layer's channels can be removed",
    ("magika", "low-rank"): r"no layer's factors at energy 0.95 are smaller",
}
# on generated noise the text detector's probabilities are ~1e-5: cosine would measure noise,
# so its budget is absolute (probabilities). fp16 met it only once nodes reading constants
# beyond float16's range stayed float32 (before: max |err| 1.0).
ABSOLUTE = {"ppocrv4-det": 1e-4}
# the heavy detector and recognizer run a subset at a small fixed shape
SUBSET = {"ppocrv4-det": ("fp16", "int8-dynamic", "prune-magnitude"),
          "ppocrv4-rec": ("fp16", "int8-dynamic", "prune-magnitude")}
SMALL = {"ppocrv4-det": [1, 3, 64, 64], "ppocrv4-rec": [1, 3, 48, 80]}
PAIRS = [(m, t) for m in thirdparty.MODELS for t in TECHNIQUES if t in SUBSET.get(m, TECHNIQUES)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build every pair once: {(model, technique): Variant or the HarnessError}."""
    results = {}

    def get(model, technique):
        if (model, technique) not in results:
            folder = tmp_path_factory.mktemp(model)
            variants = [{"name": "fp32", "technique": "fp32"},
                        {"name": technique, "technique": technique, "params": TECHNIQUES[technique][0]}]
            manifest = variant_build.load_manifest(thirdparty.manifest(folder, model, variants, samples=3,
                                                             first_shape=SMALL.get(model)))
            try:
                results[(model, technique)] = variant_build.build_variant(manifest, manifest.recipe(technique),
                                                                folder / "cache", evaluate_accuracy=False)
            except HarnessError as exc:
                results[(model, technique)] = exc
            results[(model, "fp32")] = variant_build.build_variant(manifest, manifest.recipe("fp32"), folder / "cache",
                                                         evaluate_accuracy=False)
        return results[(model, technique)], results[(model, "fp32")]
    return get


@pytest.mark.parametrize("model,technique", PAIRS, ids=[f"{m}-{t}" for m, t in PAIRS])
def test_technique_changes_the_model_or_refuses_by_name(built, model, technique):
    # mutations checked: normalize() not called before techniques -> PP-OCR prune-magnitude
    # "no Conv/Gemm/MatMul weight"; int8-dynamic without _require_quantized -> silero "built"
    variant, base = built(model, technique)
    reason = REFUSED.get((model, technique))
    if reason is not None:
        assert isinstance(variant, HarnessError), f"{model}/{technique} was expected to refuse ({reason})"
        assert re.search(reason, str(variant)), str(variant)
        assert f"({technique}, {technique})" in str(variant)       # names the manifest's variant
        return
    assert not isinstance(variant, HarnessError), str(variant)
    assert variant.sha256 != base.sha256
    onnx.checker.check_model(str(variant.path), full_check=True)
    budget = TECHNIQUES[technique][1]
    a = variant.agreement
    assert a.n == 3 and a.source.startswith("generated, seed 0")
    assert all(e["finite"] for e in a["outputs"].values())
    if model in ABSOLUTE:
        assert a.max_abs <= ABSOLUTE[model], f"{model}/{technique}: {a}"
    else:
        assert a.cosine_min >= budget, f"{model}/{technique}: {a}"
    # same network, same counts: only the graph-changing techniques may change MACs
    if technique not in ("low-rank", "prune-structured"):
        assert variant.macs == base.macs and variant.n_params == base.n_params


@pytest.mark.parametrize("model", list(thirdparty.MODELS))
def test_ratios_stay_under_their_bit_width_ceiling(built, model):
    for technique, ceiling in (("fp16", 2.0), ("int8-dynamic", 4.0)):
        variant, base = built(model, technique)
        if isinstance(variant, HarnessError):
            continue
        assert 1.0 < base.weight_bytes / variant.weight_bytes <= ceiling, (technique, variant.weight_bytes)


def independent_macs(path, shapes) -> int:
    """MACs from the tensor shapes onnxruntime itself produces, one formula per operator."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    ops = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")]
    wanted = sorted({t for n in ops for t in (n.input[0], n.input[1], n.output[0])}
                    - {t.name for t in model.graph.initializer})
    existing = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in wanted if t not in existing)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    types = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}
    feed = {i.name: np.zeros(shapes[i.name], types[i.type]) for i in sess.get_inputs()}
    got = dict(zip(wanted, sess.run(wanted, feed)))
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    shape = lambda t: inits[t] if t in inits else list(got[t].shape)   # noqa: E731
    total = 0
    for n in ops:
        x, w, y = shape(n.input[0]), shape(n.input[1]), shape(n.output[0])
        if n.op_type == "Conv":
            total += int(np.prod(y)) * int(np.prod(w[1:]))
        elif n.op_type == "ConvTranspose":
            total += int(np.prod(x)) * int(np.prod(w[1:]))
        else:
            total += int(np.prod(y)) * x[-1]          # every output meets the shared axis once
    return total


@pytest.mark.parametrize("model,shape", [("ppocrv4-det", [1, 3, 480, 480]), ("ppocr-cls", [1, 3, 48, 192]),
                                         ("ppocrv4-rec", [1, 3, 48, 320]), ("magika", [1, 2048])])
def test_macs_at_the_manifest_shape_equal_an_independent_count(model, shape):
    # mutation checked: static_shapes ignoring input_shapes (every dynamic dim 1) -> det 4.1 M
    from harness.modelinfo import facts

    path = thirdparty.model_file(model)
    name = thirdparty.INPUTS[model][0]["name"]
    f = facts(path, {name: shape})
    assert f.macs == independent_macs(path, {name: shape}) > 1_000_000
    assert f.params > 100_000


def test_ppocrv4_rec_is_measured_on_the_local_device(built, tmp_path):
    from harness.devices import open_device
    from harness.inventory import parse_device
    from harness.measurement import from_rounds

    variant, base = built("ppocrv4-rec", "fp16")
    inputs = [dict(thirdparty.INPUTS["ppocrv4-rec"][0], shape=SMALL["ppocrv4-rec"])]
    for v in (base, variant):
        with open_device(parse_device({"kind": "local"}, tmp_path / "local.yaml", "local")) as dev:
            raw = dev.run({"model": dev.deploy(v.path), "inputs": inputs, "min_iterations": 3,
                           "min_duration_s": 0, "warmup": 1})
        m = from_rounds([raw], device="local", variant=v, emulated=False, settings={}, provenance={})
        assert m.latency.p50_ms > 0 and len(m.samples_ns) >= 3
        assert m.macs == base.macs and m.macs is not None
        assert m.agreement["cosine_min"] == v.agreement.cosine_min >= 0.999
