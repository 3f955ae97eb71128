"""Tiny ONNX models built with onnx.helper, so compression tests do not need the zoo files.

Weights are random; "accuracy" is agreement with the base model's own predictions on
random inputs, which is enough to see a sensitivity scan work.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.compress import BuildContext, get_technique
from harness.compress import onnx_graph as g

OPSET = 17


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _model(nodes, inits, in_shape, name):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def mlp(seed=0, hidden=(32, 16), matmul=False) -> onnx.ModelProto:
    """input [1,64] -> (Gemm|MatMul+Add, Relu) x len(hidden) -> Gemm -> Softmax."""
    rng = np.random.default_rng(seed)
    nodes, inits, x, width = [], [], "input", 64
    for i, out in enumerate(list(hidden) + [10]):
        w = rng.normal(0, 1 / np.sqrt(width), (out, width))
        b = rng.normal(0, 0.1, out)
        y = f"fc{i}"
        if matmul and i < len(hidden):
            inits += [_init(f"w{i}", w.T), _init(f"b{i}", b)]
            nodes += [helper.make_node("MatMul", [x, f"w{i}"], [y + "_mm"], name=f"mm{i}"),
                      helper.make_node("Add", [y + "_mm", f"b{i}"], [y], name=f"add{i}")]
        else:
            inits += [_init(f"w{i}", w), _init(f"b{i}", b)]
            nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [y], name=f"gemm{i}", transB=1))
        if i < len(hidden):
            nodes.append(helper.make_node("Relu", [y], [y + "_relu"], name=f"relu{i}"))
            y += "_relu"
        x, width = y, out
    nodes.append(helper.make_node("Softmax", [x], ["probabilities"], name="softmax", axis=1))
    return _model(nodes, inits, [1, 64], "mlp")


def cnn(seed=0, channels=(8, 16), hidden=32, batchnorm=False, reshape=False) -> onnx.ModelProto:
    """input [1,1,8,8] -> Conv3x3 -> Relu -> Conv3x3 -> Relu -> MaxPool2 -> Flatten -> Gemm -> Relu -> Gemm -> Softmax."""
    rng = np.random.default_rng(seed)
    c0, c1 = channels
    inits = [
        _init("conv0.w", rng.normal(0, 0.5, (c0, 1, 3, 3))), _init("conv0.b", rng.normal(0, 0.1, c0)),
        _init("conv1.w", rng.normal(0, 1 / np.sqrt(9 * c0), (c1, c0, 3, 3))), _init("conv1.b", rng.normal(0, 0.1, c1)),
        _init("fc0.w", rng.normal(0, 1 / np.sqrt(16 * c1), (hidden, 16 * c1))), _init("fc0.b", rng.normal(0, 0.1, hidden)),
        _init("fc1.w", rng.normal(0, 1 / np.sqrt(hidden), (10, hidden))), _init("fc1.b", rng.normal(0, 0.1, 10)),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv0.w", "conv0.b"], ["c0"], name="conv0", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
        helper.make_node("Conv", ["r0", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p1", "flat_shape"], ["f"], name="flatten") if reshape else
        helper.make_node("Flatten", ["p1"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc0.w", "fc0.b"], ["h"], name="fc0", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="relu2"),
        helper.make_node("Gemm", ["hr", "fc1.w", "fc1.b"], ["logits"], name="fc1", transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    if reshape:
        inits.append(numpy_helper.from_array(np.array([1, 16 * c1], dtype=np.int64), "flat_shape"))
    if batchnorm:   # conv0 -> BatchNormalization -> relu0
        inits += [_init("bn.scale", rng.uniform(0.5, 1.5, c0)), _init("bn.bias", rng.normal(0, 0.1, c0)),
                  _init("bn.mean", rng.normal(0, 0.1, c0)), _init("bn.var", rng.uniform(0.5, 1.5, c0))]
        nodes[0].output[0] = "c0_pre"
        nodes.insert(1, helper.make_node("BatchNormalization", ["c0_pre", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
                                         ["c0"], name="bn0"))
    return _model(nodes, inits, [1, 1, 8, 8], "cnn")


def inputs(model, n=64, seed=1) -> np.ndarray:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(seed).random((n, *shape[1:]), dtype=np.float32)


def build(tmp_path: Path, model, name, params, evaluate=True, train_hook=None, n=64):
    """Run technique ``name`` on ``model``; returns (BuildResult, base path, inputs)."""
    base = Path(tmp_path) / "base.onnx"
    onnx.save(model, str(base))
    x = inputs(model, n)
    labels = g.run(model, x).argmax(1)

    def top1(path):
        return float((g.run(g.load(path), x).argmax(1) == labels).mean())

    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    ctx = BuildContext(base=base, out=Path(tmp_path) / f"{name}.onnx", params=params,
                       source=f"models/test.yaml: variants[0] ({name})", calibration=x,
                       input_name="input", input_shape=shape,
                       evaluate=top1 if evaluate else None, train_hook=train_hook)
    return get_technique(name).build(ctx), base, x
