"""Numeric precision variants of an ONNX model: fp32 (the base), fp16, int8 dynamic and
int8 static (QDQ, calibrated on data that is never used for evaluation)."""
from __future__ import annotations

import re
import shutil
import warnings
from typing import Optional

import numpy as np
import onnx

from ..errors import ConfigError, ModelError
from ..registry import Option
from . import normalize, technique
from . import onnx_graph as g
from .base import BuildContext, BuildResult


@technique("fp32", description="The base model unchanged (the reference every ratio is against)")
def build_fp32(ctx: BuildContext) -> BuildResult:
    shutil.copyfile(ctx.base, ctx.out)
    return BuildResult(ctx.out, {"bits": 32})


def _load_error(model) -> Optional[str]:
    """onnxruntime's complaint about ``model``, or None when it loads."""
    try:
        g.session(model)
    except Exception as exc:  # onnxruntime raises several private exception types
        return str(exc)
    return None


MAX_BLOCK_ROUNDS = 8
FP16_MAX = 65504.0            # the largest finite float16
FP16_TINY = 5.96e-08          # the smallest positive (subnormal) float16


def _out_of_fp16_range(model) -> list:
    """Names of the nodes that read a float32 initializer with a value float16 cannot hold."""
    from onnx import numpy_helper

    beyond = set()
    for t in model.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            a = np.abs(numpy_helper.to_array(t))
            if a.size and a.max() > FP16_MAX:
                beyond.add(t.name)
    return [n.name for n in model.graph.node if n.name and any(i in beyond for i in n.input)]


@technique("fp16", options={
               "keep_io_types": Option(bool, True, help="keep the model's inputs and outputs float32"),
               "op_block_list": Option(list, [], items=str, help="more op types to keep in float32"),
           },
           description="Weights and activations in float16; I/O types kept, ops onnxruntime rejects stay fp32")
def build_fp16(ctx: BuildContext) -> BuildResult:
    """float16 everywhere onnxruntime accepts it.

    The converter's default op block list is the start; when onnxruntime rejects the
    converted graph, the node it names is kept in float32 (Casts around it) and the
    conversion is redone, a few rounds at most; the kept nodes are listed in the info.
    """
    from onnxconverter_common import float16

    keep_io = ctx.param("keep_io_types")
    blocked_ops = list(float16.DEFAULT_OP_BLOCK_LIST) + [str(op) for op in ctx.param("op_block_list")]
    base = g.load(ctx.base)
    already = normalize.float16_base(base)
    if already:
        raise ModelError(f"{ctx.source}: fp16: the base model is already float16 "
                         f"({', '.join(already[:5])}{' ...' if len(already) > 5 else ''}); nothing to convert")
    # a node reading a constant beyond float16's range stays float32: clipped, it changes the result
    # (PP-OCRv4 det: a BatchNormalization variance of 9.8e7 turned every output to 0 or 1)
    kept = _out_of_fp16_range(base)
    problem = None
    for _ in range(MAX_BLOCK_ROUNDS):
        source = onnx.ModelProto()
        source.CopyFrom(base)
        with warnings.catch_warnings(record=True) as caught:    # one line per clipped number otherwise
            warnings.simplefilter("always")
            model = float16.convert_float_to_float16(source, keep_io_types=keep_io, op_block_list=blocked_ops,
                                                     node_block_list=kept, min_positive_val=FP16_TINY,
                                                     max_finite_val=FP16_MAX)
        clipped = sum("truncated" in str(w.message) for w in caught)
        problem = _load_error(model)
        if problem is None:
            break
        culprit = next((n for n in re.findall(r"node \(([^)]+)\)", problem) if n and n not in kept), None)
        if culprit is None:
            break
        kept.append(culprit)
    if problem is not None:
        raise ModelError(f"{ctx.source}: fp16: onnxruntime cannot load the float16 graph even with "
                         f"{', '.join(kept) or 'the default block list'} kept in float32: {problem[:400]}")
    onnx.save(model, str(ctx.out))
    return BuildResult(ctx.out, {"bits": 16, "keep_io_types": keep_io, "kept_fp32_nodes": kept,
                                 "values_clipped_to_fp16_range": clipped})


def _at_least_opset(ctx, version: int):
    """The base, converted to opset ``version`` when it is older (written next to the output)."""
    model = g.load(ctx.base)
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), version)
    if current >= version:
        return ctx.base
    from onnx import version_converter

    try:
        model = version_converter.convert_version(model, version)
    except Exception as exc:
        raise ModelError(f"{ctx.source}: the base's opset {current} cannot be raised to {version}, "
                         f"which int8 QDQ needs: {exc}") from None
    path = ctx.out.with_name(ctx.out.stem + f".opset{version}.onnx")
    onnx.save(model, str(path))
    return path


QUANTIZED_OPS = ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DequantizeLinear",
                 "QLinearMatMul", "QLinearConv", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
                 "DynamicQuantizeLSTM")


def _require_quantized(ctx, path, technique_name):
    """A quantizer that added no quantized operator changed nothing: refuse with the reason."""
    model = g.load(path)
    if any(n.op_type in QUANTIZED_OPS for n in model.graph.node):
        return
    inside = normalize.subgraph_weights(model)
    reason = (f"its weight operators sit inside subgraphs ({', '.join(inside)})" if inside
              else "no Conv/Gemm/MatMul weight it quantizes outside subgraphs")
    raise ModelError(f"{ctx.source}: {technique_name}: onnxruntime's quantizer added no quantized "
                     f"operator: {reason}")


@technique("int8-dynamic", options={"per_channel": Option(bool, False, help="one scale per output channel")},
           description="int8 weights, activations quantized at run time (onnxruntime quantize_dynamic)")
def build_int8_dynamic(ctx: BuildContext) -> BuildResult:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    per_channel = ctx.param("per_channel")
    quantize_dynamic(str(_at_least_opset(ctx, 13)), str(ctx.out), weight_type=QuantType.QInt8, per_channel=per_channel)
    _require_quantized(ctx, ctx.out, "int8-dynamic")
    return BuildResult(ctx.out, {"bits": 8, "per_channel": per_channel, "activations": "dynamic"})


class _Calibration:
    """onnxruntime CalibrationDataReader over representative feeds ({input name: array})."""

    def __init__(self, feeds):
        self._items = iter([dict(f) for f in feeds])

    def get_next(self):
        return next(self._items, None)


@technique("int8-static", options={
               "per_channel": Option(bool, True, help="one scale per output channel"),
               "samples": Option(int, 200, minimum=1, help="calibration samples"),
               "method": Option(str, "minmax", choices=("entropy", "minmax", "percentile"),
                                help="how activation ranges are calibrated"),
           },
           description="int8 weights and activations, QDQ, calibrated offline")
def build_int8_static(ctx: BuildContext) -> BuildResult:
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    per_channel = ctx.param("per_channel")
    samples = ctx.param("samples")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    method = ctx.param("method")
    feeds = ctx.calibration_feeds
    if feeds is None and ctx.calibration is not None:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in ctx.input_shape]
        feeds = [{ctx.input_name: s.reshape(shape).astype(np.float32)} for s in ctx.calibration]
    if not feeds:
        raise ConfigError(ctx.source, "technique", "representative inputs (a dataset, calibration: "
                          "an .npz, or generated ones)", "int8-static", "none were given")
    feeds = feeds[:samples]
    source = _at_least_opset(ctx, 13)      # per-channel DequantizeLinear (axis) needs opset 13
    quantize_static(str(source), str(ctx.out), _Calibration(feeds), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=per_channel, calibrate_method=methods[method])
    _require_quantized(ctx, ctx.out, "int8-static")
    return BuildResult(ctx.out, {"bits": 8, "per_channel": per_channel, "activations": "static",
                                 "calibration_samples": len(feeds), "calibration_method": method,
                                 "calibration": ctx.calibration_source or "dataset"})
