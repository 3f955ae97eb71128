"""Per-operator profiles: the document, its alignment to the model, the roofline.

A runtime that can time its operators returns, beside the timed rounds (never inside them):

    {"source": "onnxruntime-profiler" | "litert-op-profiler" | "mcu-firmware", "unit": "us",
     "runs": int,                 # profiled inferences the means are over
     "total_us": float,           # mean whole inference in the profiled pass
     "ops": [{"name": str, "op_type": str, "time_us": float,   # mean per inference
              "provider": str | None, "shapes": str | None}],
     "coverage": float,           # sum(op time) / total_us
     "overhead": float | None}    # profiled inference / timed inference - 1

or {"offered": false, "reason": "..."} when it cannot. `shapes` reads
``float[1,16,8,8] float[16] -> float[1,16,8,8]`` (inputs -> outputs). An ONNX model's ops are
named as the runtime names them (onnxruntime's optimized graph: a fused Conv+Relu is named
after the tensor it writes, e.g. ``/Relu_output_0_nchwc``); a TFLite model's by their
execution index ("0", "1", ...), as harness.modelinfo.node_facts names them.

The host then ALIGNS the ops to the model's nodes (`align`: MACs, parameter and activation
bytes) and, given the device's measured peak (harness.profile_peak), adds the ROOFLINE:
arithmetic intensity (MACs per byte moved) and achieved MAC/s against the compute and
bandwidth roofs, per operator and per variant (`roofline`). Both are stored inside the
profile, with the measurement, so a report needs nothing but the store.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from numbers import Real
from typing import Optional

from .document import DocumentError

SOURCES = ("onnxruntime-profiler", "litert-op-profiler", "mcu-firmware")
# A host profiler's spans nest on one clock, so sum(op times) never exceeds the whole; the gap is
# the profiler's own per-operator bookkeeping and the framework between operators. The MCU
# firmware times each operator in its own pass of inferences, less the clock read's cost, so
# its sum may pass the whole by that subtraction's error (0.15% seen under QEMU).
COVERAGE_MAX = {"mcu-firmware": 1.02}
COVERAGE_NESTED = 1.0 + 1e-6

CONV_LIKE = ("Conv", "FusedConv", "NhwcConv", "ConvInteger", "QLinearConv", "ConvTranspose", "NhwcFusedConv")
MATMUL_LIKE = ("Gemm", "FusedGemm", "MatMul", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "QGemm",
               "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits")
# single-input-chain operators onnxruntime fuses into the Conv/Gemm before them
FUSABLE = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "Tanh", "Add", "Mul", "BatchNormalization",
           "HardSwish", "Elu")
RUNTIME_SUFFIXES = ("_nchwc", "_fused", "_NhwcFused")
RUNTIME_PREFIXES = ("fused ",)            # onnxruntime's Conv/Gemm + activation fusion
ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "Tanh", "HardSwish", "Elu")
_TOKEN = re.compile(r"_token_\d+$")
_TENSOR = re.compile(r"([A-Za-z0-9_]+)\[([0-9,\s]*)\]")
_ITEMSIZE = {"float": 4, "float32": 4, "double": 8, "float64": 8, "float16": 2, "MLFloat16": 2, "bfloat16": 2,
             "BFloat16": 2, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
             "int64": 8, "uint64": 8, "bool": 1}


# ------------------------------------------------------------------ the document

def _fail(source, field, expected, got) -> DocumentError:
    shown = repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return DocumentError(f"{source}: profile: {field}: expected {expected}, got {shown}")


def _number(x) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(float(x))


def offered(profile: Optional[dict]) -> bool:
    return isinstance(profile, dict) and profile.get("offered", True) is not False


def validate(profile, source: str) -> dict:
    """Return `profile` when it meets the format above; raise DocumentError naming the field."""
    if not isinstance(profile, dict):
        raise _fail(source, "(profile)", "an object", type(profile).__name__)
    if profile.get("offered", True) is False:
        if not isinstance(profile.get("reason"), str) or not profile["reason"].strip():
            raise _fail(source, "reason", "a non-empty text saying why no profile is offered", profile.get("reason"))
        return profile
    if profile.get("source") not in SOURCES:
        raise _fail(source, "source", f"one of {list(SOURCES)}", profile.get("source"))
    if profile.get("unit") != "us":
        raise _fail(source, "unit", "'us'", profile.get("unit"))
    runs = profile.get("runs")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise _fail(source, "runs", "a count >= 1", runs)
    total = profile.get("total_us")
    if not _number(total) or total <= 0:
        raise _fail(source, "total_us", "a number of microseconds > 0", total)
    ops = profile.get("ops")
    if not isinstance(ops, list) or not ops:
        raise _fail(source, "ops", "a non-empty list of operators", ops)
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise _fail(source, f"ops[{i}]", "an object", op)
        for key in ("name", "op_type"):
            if not isinstance(op.get(key), str) or not op[key]:
                raise _fail(source, f"ops[{i}].{key}", "a non-empty text", op.get(key))
        if not _number(op.get("time_us")) or op["time_us"] < 0:
            raise _fail(source, f"ops[{i}].time_us", "a number of microseconds >= 0", op.get("time_us"))
        for key in ("provider", "shapes"):
            if op.get(key) is not None and not isinstance(op[key], str):
                raise _fail(source, f"ops[{i}].{key}", "a text or null", op[key])
    coverage = profile.get("coverage")
    most = COVERAGE_MAX.get(profile.get("source"), COVERAGE_NESTED)
    if not _number(coverage) or not 0 <= coverage <= most:
        raise _fail(source, "coverage", f"a fraction 0..{most:g} (the operators' times inside the whole)",
                    coverage)
    summed = sum(op["time_us"] for op in ops) / total
    if abs(summed - coverage) > 1e-6 * max(1.0, summed):
        raise _fail(source, "coverage", f"sum(ops.time_us) / total_us = {summed:.6g}", coverage)
    if profile.get("overhead") is not None and not _number(profile["overhead"]):
        raise _fail(source, "overhead", "a number or null", profile["overhead"])
    return profile


# ------------------------------------------------------------------ shapes

def parse_shapes(text: Optional[str]) -> tuple:
    """``float[1,8] int8[8,4] -> float[1,4]`` -> ([("float", [1, 8]), ...], [("float", [1, 4])])."""
    if not text or "->" not in text:
        return [], []
    left, right = text.split("->", 1)

    def tensors(part):
        return [(dtype, [int(d) for d in dims.split(",") if d.strip()]) for dtype, dims in _TENSOR.findall(part)]
    return tensors(left), tensors(right)


def _tensor_bytes(tensors) -> Optional[int]:
    total = 0
    for dtype, dims in tensors:
        if dtype not in _ITEMSIZE:
            return None
        total += _ITEMSIZE[dtype] * math.prod(dims)
    return total


def macs_from_shapes(op_type: str, text: Optional[str]) -> Optional[int]:
    """MACs of a Conv-like or MatMul-like operator from its executed shapes (a runtime's fused
    or inserted operator the model does not name); 0 for other operators; None if unknown."""
    inputs, outputs = parse_shapes(text)
    if op_type not in CONV_LIKE + MATMUL_LIKE:
        return 0
    if not inputs or not outputs:
        return None
    out = math.prod(outputs[0][1])
    if op_type in CONV_LIKE:
        weight = next((dims for _, dims in inputs[1:] if len(dims) == len(inputs[0][1]) and len(dims) >= 3), None)
        return None if weight is None else out * math.prod(weight[1:])
    k = inputs[0][1][-1] if inputs[0][1] else None      # A's inner dimension
    return None if not k else out * k


def is_int8(op: dict) -> bool:
    inputs, _ = parse_shapes(op.get("shapes"))
    return any(dtype in ("int8", "uint8") for dtype, _ in inputs) or "Integer" in op.get("op_type", "") \
        or op.get("op_type", "").startswith("QLinear")


# ------------------------------------------------------------------ alignment

def align(profile: dict, facts: list) -> dict:
    """The profile with every operator aligned to the model's nodes (harness.modelinfo.NodeFacts):
    ``nodes`` (the model nodes it ran: one, a fused chain, or none for an operator the runtime
    inserted), ``macs``, ``bytes`` (parameters + activations moved) and ``int8``."""
    if not offered(profile):
        return profile
    by_name = {f.name: f for f in facts}
    producer = {t: f for f in facts for t in f.outputs}
    consumers: dict = {}
    for f in facts:
        for t in f.inputs:
            consumers.setdefault(t, []).append(f)
    ops = []
    for op in profile["ops"]:
        group = _model_nodes(op["name"], by_name, producer)
        if group and op["op_type"].startswith("Fused"):
            # a FusedConv/FusedGemm named after its Conv/Gemm also ran the activation after it
            after = consumers.get(group[-1].outputs[0], []) if group[-1].outputs else []
            if len(after) == 1 and after[0].op_type in ACTIVATIONS:
                group = group + after
        shape_in, shape_out = parse_shapes(op.get("shapes"))
        if group:
            macs = None if any(f.macs is None for f in group) else sum(f.macs for f in group)
            first = group[0].activation_bytes
            moved = None if first is None else first + sum(f.param_bytes for f in group)
        else:
            macs = macs_from_shapes(op["op_type"], op.get("shapes"))
            moved = _tensor_bytes(shape_in + shape_out) if (shape_in or shape_out) else None
        ops.append({**op, "nodes": [f.name for f in group], "macs": macs, "bytes": moved, "int8": is_int8(op)})
    return {**profile, "ops": ops, "aligned": {"model_nodes": len(facts),
                                                "matched": sum(1 for o in ops if o["nodes"]),
                                                "inserted": [o["name"] for o in ops if not o["nodes"]]}}


def _model_nodes(name: str, by_name: dict, producer: dict) -> list:
    """The model nodes an executed operator stands for: its own name, or the node writing the
    tensor it is named after (onnxruntime's fused and re-laid-out nodes), walking back through
    the activations it fused into the Conv/Gemm before them."""
    candidates = [name, _TOKEN.sub("", name)]
    for prefix in RUNTIME_PREFIXES:
        candidates += [c[len(prefix):] for c in list(candidates) if c.startswith(prefix)]
    for suffix in RUNTIME_SUFFIXES:
        candidates += [c[: -len(suffix)] for c in list(candidates) if c.endswith(suffix)]
    for c in candidates:
        if c in by_name:
            return [by_name[c]]
    tensor = next((c for c in candidates if c in producer), None)
    if tensor is None:
        return []
    chain = [producer[tensor]]
    while chain[0].op_type in FUSABLE and chain[0].inputs and chain[0].inputs[0] in producer:
        before = producer[chain[0].inputs[0]]
        if before.op_type not in FUSABLE + CONV_LIKE + MATMUL_LIKE:
            break
        chain.insert(0, before)
        if before.op_type not in FUSABLE:
            break
    return chain


# ------------------------------------------------------------------ summaries

def by_op_type(profile: dict) -> "OrderedDict[str, float]":
    """Mean time per inference of each operator type, largest first."""
    totals: dict = {}
    for op in profile["ops"]:
        totals[op["op_type"]] = totals.get(op["op_type"], 0.0) + op["time_us"]
    return OrderedDict(sorted(totals.items(), key=lambda kv: -kv[1]))


def top_ops(profile: dict, n: int = 10) -> list:
    """The n slowest operators, each with its share of the operators' summed time."""
    summed = sum(op["time_us"] for op in profile["ops"]) or 1.0
    ranked = sorted(profile["ops"], key=lambda op: -op["time_us"])[:n]
    return [{**op, "share": op["time_us"] / summed} for op in ranked]


def op_type_difference(a: dict, b: dict) -> list:
    """Per operator type: time in a, time in b, b - a (us per inference), largest change first:
    where one variant lost or won its time against another (int8-dynamic: the quantize nodes)."""
    ta, tb = by_op_type(a), by_op_type(b)
    rows = [{"op_type": k, "a_us": ta.get(k, 0.0), "b_us": tb.get(k, 0.0), "diff_us": tb.get(k, 0.0) - ta.get(k, 0.0)}
            for k in set(ta) | set(tb)]
    return sorted(rows, key=lambda r: -abs(r["diff_us"]))


# ------------------------------------------------------------------ roofline

def _attainable(intensity: Optional[float], compute: float, bandwidth: Optional[float]) -> Optional[float]:
    if intensity is None or not bandwidth:
        return None
    return min(compute, intensity * bandwidth)


def roofline(profile: dict, peak: dict) -> dict:
    """Arithmetic intensity (MACs / byte) and achieved MAC/s of every aligned operator and of the
    whole variant, against the measured roofs: ``peak`` = {"macs_per_s": {"fp32": .., "int8": ..},
    "bytes_per_s": ..}. An operator is judged against the int8 roof when it reads int8 tensors."""
    compute, bandwidth = peak["macs_per_s"], peak.get("bytes_per_s")   # an MCU may know no bandwidth

    def point(macs, moved, time_us, int8):
        roof = compute.get("int8" if int8 else "fp32") or compute.get("fp32")
        if not macs or not time_us or not roof:
            return {"intensity": None, "achieved_macs_per_s": None, "pct_of_peak": None, "pct_of_roof": None}
        achieved = macs / (time_us * 1e-6)
        intensity = macs / moved if moved else None
        attainable = _attainable(intensity, roof, bandwidth)
        return {"intensity": intensity, "achieved_macs_per_s": achieved, "pct_of_peak": 100.0 * achieved / roof,
                "pct_of_roof": None if not attainable else 100.0 * achieved / attainable,
                "bound": None if intensity is None or not bandwidth
                else ("memory" if intensity * bandwidth < roof else "compute")}

    ops = [{"name": op["name"], "op_type": op["op_type"], "int8": op.get("int8", False),
            **point(op.get("macs"), op.get("bytes"), op["time_us"], op.get("int8", False))}
           for op in profile["ops"]]
    macs = sum(op.get("macs") or 0 for op in profile["ops"])
    moved = sum(op.get("bytes") or 0 for op in profile["ops"])
    int8_macs = sum(op.get("macs") or 0 for op in profile["ops"] if op.get("int8"))
    variant = point(macs, moved, profile["total_us"], int8_macs * 2 > macs)
    return {"variant": {"macs": macs, "bytes": moved, "int8": int8_macs * 2 > macs, **variant}, "ops": ops}


def enrich(profile: dict, facts: list, peak: Optional[dict]) -> dict:
    """Aligned, with the peak and the roofline when a peak is known: what is stored."""
    if not offered(profile):
        return profile
    out = align(profile, facts)
    if peak:
        out["peak"] = peak
        out["roofline"] = roofline(out, peak)
    return out
