"""Facts about a model file without running it: format, SHA-256, parameters, MACs.

MACs count multiply-accumulates of Conv/Gemm/MatMul-like operators for one inference
(batch 1), the usual figure in compression papers.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError

FORMATS = {".onnx": "onnx", ".tflite": "tflite"}


@dataclass(frozen=True)
class ModelFacts:
    format: str
    sha256: str
    size_bytes: int
    params: int
    macs: int


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ModelError(f"{path}: unsupported model format; expected one of {', '.join(FORMATS)}")
    return fmt


def facts(path: Path) -> ModelFacts:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    fmt = model_format(path)
    params, macs = (_onnx_counts if fmt == "onnx" else _tflite_counts)(path)
    return ModelFacts(fmt, sha256_file(path), path.stat().st_size, params, macs)


def _onnx_counts(path: Path) -> tuple[int, int]:
    import onnx
    from onnx import numpy_helper, shape_inference

    try:
        model = onnx.load(str(path))
        inferred = shape_inference.infer_shapes(model)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model: {exc}") from None
    graph = inferred.graph
    inits = {t.name: t for t in graph.initializer}
    # Quantized/fp16 graphs keep weights as initializers too; scalars (scales, zero points)
    # are not parameters.
    params = sum(int(np.prod(t.dims)) for t in graph.initializer if int(np.prod(t.dims)) > 1)
    shapes = {}
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    for name, t in inits.items():
        shapes[name] = list(t.dims)
    # DequantizeLinear(weight) feeds the matmul in QDQ graphs: follow it back to the weight.
    producer = {o: n for n in graph.node for o in n.output}

    def weight_shape(name):
        node = producer.get(name)
        while node is not None and node.op_type in ("DequantizeLinear", "Cast") and node.input:
            name = node.input[0]
            node = producer.get(name)
        return shapes.get(name)

    macs = 0
    for node in graph.node:
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            w = weight_shape(node.input[3 if node.op_type == "QLinearConv" else 1])
            out = shapes.get(node.output[0])
            if w and out:
                macs += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
            a = shapes.get(node.input[0])
            out = shapes.get(node.output[0])
            if a and out:
                macs += int(np.prod(out)) * int(a[-1])
    return params, macs


def _tflite_counts(path: Path) -> tuple[int, int]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            return 0, 0  # counts need a TFLite interpreter on the host; sizes still work
    try:
        interp = Interpreter(model_path=str(path))
        tensors = {t["index"]: t for t in interp.get_tensor_details()}
        ops = interp._get_ops_details()
    except Exception as exc:
        raise ModelError(f"{path}: not a readable TFLite model: {exc}") from None
    produced = {i for op in ops for i in op["outputs"]}
    graph_inputs = {d["index"] for d in interp.get_input_details()}
    consumed = {i for op in ops for i in op["inputs"] if i >= 0}
    constants = consumed - produced - graph_inputs
    params = sum(int(np.prod(tensors[i]["shape"])) for i in constants
                 if int(np.prod(tensors[i]["shape"])) > 1)
    macs = 0
    for op in ops:
        name = op["op_name"]
        out = tensors[op["outputs"][0]]["shape"]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = tensors[op["inputs"][1]]["shape"]  # [O,H,W,I] or [1,H,W,C*M]
            per_output = int(w[1] * w[2] * (w[3] if name == "CONV_2D" else 1))
            macs += int(np.prod(out)) * per_output
        elif name == "FULLY_CONNECTED":
            w = tensors[op["inputs"][1]]["shape"]
            macs += int(np.prod(out)) * int(w[-1])
    return params, macs
