"""Small full-int8 .tflite models built directly with LiteRT's flatbuffer schema, so the
engine can be checked on operator configurations the zoo does not use (strides, SAME
padding with partial windows, dilation, depth multipliers, RELU6, per-tensor weights,
batched fully connected) without TensorFlow.

A model is a chain: ``chain(path, input_shape, layers)`` with layers such as
``("conv", dict(out=4, k=3, stride=2, padding="SAME", act="RELU6"))``. Weights, biases and
scales are drawn from a seeded generator.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

PADDING = {"SAME": 0, "VALID": 1}
ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _out_size(padding, size, k, stride, dilation=1):
    eff = (k - 1) * dilation + 1
    return math.ceil(size / stride) if padding == "SAME" else (size - eff + stride) // stride


def chain(path: Path, input_shape, layers, seed=0) -> Path:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as S

    rng = np.random.default_rng(seed)
    tensors, buffers, operators, codes = [], [S.BufferT()], [], []

    def add_tensor(shape, dtype, scale, zp, data=None, qdim=0, name=None):
        t = S.TensorT()
        t.shape = list(shape)
        t.type = {"int8": S.TensorType.INT8, "int32": S.TensorType.INT32}[dtype]
        t.name = name or f"t{len(tensors)}"
        q = S.QuantizationParametersT()
        q.scale = [float(s) for s in np.atleast_1d(scale)]
        q.zeroPoint = [int(z) for z in np.atleast_1d(zp)]
        q.quantizedDimension = qdim
        t.quantization = q
        t.buffer = 0
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    def opcode(name):
        code = getattr(S.BuiltinOperator, name)
        for i, c in enumerate(codes):
            if c.builtinCode == code:
                return i
        c = S.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
        codes.append(c)
        return len(codes) - 1

    def add_op(name, inputs, outputs, options_type, options):
        op = S.OperatorT()
        op.opcodeIndex = opcode(name)
        op.inputs, op.outputs = list(inputs), list(outputs)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        operators.append(op)

    shape = list(input_shape)
    scale, zp = 1.0 / 255, -128
    x = first = add_tensor(shape, "int8", scale, zp, name="input")
    for kind, p in layers:
        act = ACT[p.get("act", "NONE")]
        if kind in ("conv", "dwconv"):
            k, stride, dil, pad = p.get("k", 3), p.get("stride", 1), p.get("dilation", 1), p.get("padding", "SAME")
            cin = shape[3]
            cout = p["out"] if kind == "conv" else cin * p.get("mult", 1)
            per_channel = p.get("per_channel", True)
            w_scale = rng.uniform(0.002, 0.02, cout if per_channel else 1)
            w = rng.integers(-127, 128, (cout, k, k, cin) if kind == "conv" else (1, k, k, cout)).astype(np.int8)
            fan_in = k * k * (cin if kind == "conv" else 1)
            bias_scale = scale * w_scale
            bias = rng.integers(-2000, 2000, cout).astype(np.int32)
            oh = _out_size(pad, shape[1], k, stride, dil)
            ow = _out_size(pad, shape[2], k, stride, dil)
            out_scale = float(scale * np.mean(w_scale) * 40 * math.sqrt(fan_in))
            out_zp = int(rng.integers(-20, 20))
            wt = add_tensor(w.shape, "int8", w_scale, [0] * len(w_scale), w, qdim=0 if kind == "conv" else 3)
            bt = add_tensor([cout], "int32", bias_scale, [0] * len(bias_scale), bias)
            y = add_tensor([1, oh, ow, cout], "int8", out_scale, out_zp)
            if kind == "conv":
                o = S.Conv2DOptionsT()
                otype, name = S.BuiltinOptions.Conv2DOptions, "CONV_2D"
            else:
                o = S.DepthwiseConv2DOptionsT()
                o.depthMultiplier = p.get("mult", 1)
                otype, name = S.BuiltinOptions.DepthwiseConv2DOptions, "DEPTHWISE_CONV_2D"
            o.padding, o.strideH, o.strideW = PADDING[pad], stride, stride
            o.dilationHFactor = o.dilationWFactor = dil
            o.fusedActivationFunction = act
            add_op(name, [x, wt, bt], [y], otype, o)
            shape, scale, zp = [1, oh, ow, cout], out_scale, out_zp
        elif kind in ("avgpool", "maxpool"):
            k, stride, pad = p.get("k", 2), p.get("stride", 2), p.get("padding", "VALID")
            oh, ow = _out_size(pad, shape[1], k, stride), _out_size(pad, shape[2], k, stride)
            y = add_tensor([1, oh, ow, shape[3]], "int8", scale, zp)
            o = S.Pool2DOptionsT()
            o.padding, o.strideH, o.strideW, o.filterHeight, o.filterWidth = PADDING[pad], stride, stride, k, k
            o.fusedActivationFunction = act
            add_op("AVERAGE_POOL_2D" if kind == "avgpool" else "MAX_POOL_2D", [x], [y],
                   S.BuiltinOptions.Pool2DOptions, o)
            shape = [1, oh, ow, shape[3]]
        elif kind == "reshape":
            new = p["shape"]
            st = add_tensor([len(new)], "int32", 0.0, 0, np.array(new, np.int32))
            tensors[st].quantization = None
            y = add_tensor(new, "int8", scale, zp)
            o = S.ReshapeOptionsT()
            o.newShape = list(new)
            add_op("RESHAPE", [x, st], [y], S.BuiltinOptions.ReshapeOptions, o)
            shape = list(new)
        elif kind == "fc":
            n_in = shape[-1]
            per_channel = p.get("per_channel", False)
            w_scale = rng.uniform(0.002, 0.02, p["out"] if per_channel else 1)
            w = rng.integers(-127, 128, (p["out"], n_in)).astype(np.int8)
            bias = rng.integers(-2000, 2000, p["out"]).astype(np.int32)
            out_scale = float(scale * np.mean(w_scale) * 40 * math.sqrt(n_in))
            out_zp = int(rng.integers(-20, 20))
            wt = add_tensor(w.shape, "int8", w_scale, [0] * len(w_scale), w)
            bt = add_tensor([p["out"]], "int32", scale * w_scale, [0] * len(w_scale), bias)
            y = add_tensor(shape[:-1] + [p["out"]], "int8", out_scale, out_zp)
            o = S.FullyConnectedOptionsT()
            o.fusedActivationFunction = act
            add_op("FULLY_CONNECTED", [x, wt, bt], [y], S.BuiltinOptions.FullyConnectedOptions, o)
            shape, scale, zp = shape[:-1] + [p["out"]], out_scale, out_zp
        elif kind == "softmax":
            y = add_tensor(shape, "int8", 1.0 / 256, -128)
            o = S.SoftmaxOptionsT()
            o.beta = p.get("beta", 1.0)
            add_op("SOFTMAX", [x], [y], S.BuiltinOptions.SoftmaxOptions, o)
            scale, zp = 1.0 / 256, -128
        else:
            raise ValueError(kind)
        x = y

    graph = S.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [first], [x], operators
    graph.name = "main"
    model = S.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, codes, [graph], buffers
    model.description = "harness test model"
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path
