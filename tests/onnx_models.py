"""The ONNX models the tests build on the fly (no committed binaries needed): one module.

- single_op_model: one operator over a few inputs (runner, zoo, manifest checks);
- matmul_chain: x[batch, width] through `depth` MatMuls (optionally Relu): a model of a
  chosen size (about 4 * depth * width^2 bytes) and cost (depth * width^2 MACs per row);
- mlp, cnn: small classifiers with biases, Relu and Softmax, for the compression techniques.
Every model is opset 17 (unless asked) and IR version 8, readable by older onnxruntime builds
on older board images; all but single_op_model's (which may be broken on purpose) pass
onnx.checker before they are saved.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def model_of(nodes, inputs, outputs, initializers=(), name="m", opset=OPSET, check=True) -> onnx.ModelProto:
    """A model from nodes, checked unless `check` is False (a test may want a broken one);
    `inputs`/`outputs` are (name, shape) or (name, shape, dtype)."""
    def info(spec):
        name_, shape, *dtype = spec
        return helper.make_tensor_value_info(name_, dtype[0] if dtype else TensorProto.FLOAT, shape)

    graph = helper.make_graph(list(nodes), name, [info(i) for i in inputs], [info(o) for o in outputs],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def single_op_model(path: Path, op="Identity", shape=(1, 4), dtype=TensorProto.FLOAT, dynamic=False,
                    inputs=1) -> Path:
    """`op` over `inputs` inputs x0, x1... of `shape` (the first dim symbolic if dynamic), output y."""
    dims = ["batch"] + list(shape[1:]) if dynamic else list(shape)
    names = [f"x{i}" for i in range(inputs)]
    return save(model_of([helper.make_node(op, names, ["y"])], [(n, dims, dtype) for n in names],
                         [("y", dims, dtype)], name="tiny", check=False), path)


def matmul_chain(path: Path, width: int, depth: int = 1, batch: int = 1, relu: bool = False,
                 seed: int = 0) -> Path:
    """x[batch, width] -> depth x (MatMul by a width x width weight [-> Relu]) -> y."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i in range(depth):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        out = "y" if i == depth - 1 and not relu else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [out]))
        if relu:
            out, prev_out = ("y" if i == depth - 1 else f"r{i}"), out
            nodes.append(helper.make_node("Relu", [prev_out], [out]))
        prev = out
    return save(model_of(nodes, [("x", [batch, width])], [("y", [batch, width])], inits, name="matmul"), path)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _classifier(nodes, inits, in_shape, name):
    return model_of(nodes, [("input", in_shape)], [("probabilities", [1, 10])], inits, name=name)


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
    return _classifier(nodes, inits, [1, 64], "mlp")


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
    return _classifier(nodes, inits, [1, 1, 8, 8], "cnn")
