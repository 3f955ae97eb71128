"""Numeric precision variants of an ONNX model: fp32 (the base), fp16, int8 dynamic and
int8 static (QDQ, calibrated on data that is never used for evaluation)."""
from __future__ import annotations

import shutil

import numpy as np
import onnx

from ..errors import ConfigError
from . import technique
from .base import BuildContext, BuildResult


@technique("fp32", description="The base model unchanged (the reference every ratio is against)")
def build_fp32(ctx: BuildContext) -> BuildResult:
    shutil.copyfile(ctx.base, ctx.out)
    return BuildResult(ctx.out, {"bits": 32})


@technique("fp16", params=("keep_io_types",), description="Weights and activations in float16")
def build_fp16(ctx: BuildContext) -> BuildResult:
    from onnxconverter_common import float16

    keep_io = ctx.param("keep_io_types", bool, True)
    model = float16.convert_float_to_float16(onnx.load(str(ctx.base)), keep_io_types=keep_io)
    onnx.save(model, str(ctx.out))
    return BuildResult(ctx.out, {"bits": 16, "keep_io_types": keep_io})


@technique("int8-dynamic", params=("per_channel",),
           description="int8 weights, activations quantized at run time (onnxruntime quantize_dynamic)")
def build_int8_dynamic(ctx: BuildContext) -> BuildResult:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    per_channel = ctx.param("per_channel", bool, False)
    quantize_dynamic(str(ctx.base), str(ctx.out), weight_type=QuantType.QInt8, per_channel=per_channel)
    return BuildResult(ctx.out, {"bits": 8, "per_channel": per_channel, "activations": "dynamic"})


class _Calibration:
    """onnxruntime CalibrationDataReader over an array of representative inputs."""

    def __init__(self, name, shape, samples):
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
        self._items = iter([{name: s.reshape(shape).astype(np.float32)} for s in samples])

    def get_next(self):
        return next(self._items, None)


@technique("int8-static", params=("per_channel", "samples", "method"),
           description="int8 weights and activations, QDQ, calibrated offline")
def build_int8_static(ctx: BuildContext) -> BuildResult:
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    per_channel = ctx.param("per_channel", bool, True)
    samples = ctx.param("samples", int, 200, minimum=1)
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    method = ctx.param("method", str, "minmax", choices=sorted(methods))
    if ctx.calibration is None:
        raise ConfigError(ctx.source, "technique", "a model with a dataset for calibration",
                          "int8-static", "static quantization needs representative inputs")
    reader = _Calibration(ctx.input_name, ctx.input_shape, ctx.calibration[:samples])
    quantize_static(str(ctx.base), str(ctx.out), reader, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=per_channel, calibrate_method=methods[method])
    return BuildResult(ctx.out, {"bits": 8, "per_channel": per_channel, "activations": "static",
                                 "calibration_samples": int(min(samples, len(ctx.calibration))),
                                 "calibration_method": method})
