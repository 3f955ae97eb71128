"""Facts about a model file without running it: format, SHA-256, parameters, MACs.

MACs count multiply-accumulates of Conv/ConvTranspose/Gemm/MatMul-like operators for one
inference at the manifest's fixed input shapes (other dynamic dimensions 1), the usual
figure in compression papers. ``macs`` is None when shape inference cannot know the
shapes of some such operator (``macs_unknown`` names them): an unknown is never shown as 0.
Weight bytes are the parameters as stored (int8 1 byte, fp16 2, fp32 4), the numerator and
denominator of the weight ratio; the file size is the deployable file's.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ModelError

FORMATS = {".onnx": "onnx", ".tflite": "tflite", ".pt2": "pt2"}


@dataclass(frozen=True)
class ModelFacts:
    format: str
    sha256: str
    size_bytes: int
    params: int
    macs: Optional[int]
    weight_bytes: int = 0
    macs_unknown: tuple = ()


def sha256_file(path: Path) -> str:
    """Content hash of a local file, memoised per (path, size, mtime): a run deploys the same
    model to every board and round, and a 20 MB model is hashed once."""
    st = Path(path).stat()
    return _sha256_of_version(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1024)
def _sha256_of_version(path: str, _size: int, _mtime_ns: int) -> str:
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


def facts(path: Path, input_shapes: Optional[dict] = None) -> ModelFacts:
    """``input_shapes``: {input name: shape} from the manifest (ONNX; TFLite shapes are fixed)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    fmt = model_format(path)
    if fmt == "onnx":
        params, macs, weight_bytes, unknown = _onnx_counts(path, input_shapes)
    elif fmt == "pt2":
        params, weight_bytes = _pt2_counts(path)
        macs, unknown = None, ()
    else:
        params, macs = _tflite_counts(path)
        weight_bytes, unknown = 0, ()
    return ModelFacts(fmt, sha256_file(path), path.stat().st_size, params, macs, weight_bytes, unknown)


def _onnx_counts(path: Path, input_shapes):
    from .compress.onnx_graph import count_macs, count_params, load, weight_bytes

    model = load(path)
    try:
        macs = count_macs(model, input_shapes)
        return (count_params(model)["params"], None if macs["unknown"] else macs["macs"],
                weight_bytes(model), tuple(macs["unknown"]))
    except Exception as exc:  # shape inference rejects malformed graphs
        raise ModelError(f"{path}: shape inference failed at the manifest's input shapes "
                         f"{input_shapes or {}}: {exc}") from None


def _pt2_counts(path: Path) -> tuple[int, int]:
    """Parameters and their bytes of a torch.export program (its state dict and constants);
    zeros without torch on the host, as for TFLite without an interpreter."""
    try:
        import torch
    except ImportError:
        return 0, 0
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: not a loadable torch.export program: {str(exc)[:300]}") from None
    tensors = list(program.state_dict.values()) + [t for t in program.constants.values()
                                                   if isinstance(t, torch.Tensor)]
    return (sum(int(t.numel()) for t in tensors),
            sum(int(t.numel()) * t.element_size() for t in tensors))


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


# ------------------------------------------------------------------ per node (harness.profile)

@dataclass(frozen=True)
class NodeFacts:
    """One operator of the model at the manifest's shapes: what a per-operator profile is
    aligned to (harness.profile). Bytes are None where a shape or type is unknown."""
    name: str
    op_type: str
    inputs: tuple
    outputs: tuple
    macs: Optional[int]               # 0: not a multiply-accumulate operator; None: shapes unknown
    param_bytes: int
    activation_bytes: Optional[int]   # non-parameter inputs read + outputs written


def node_facts(path: Path, input_shapes: Optional[dict] = None) -> list:
    """Every operator of an ONNX model (named as the model names it) or of a TFLite model's
    first subgraph (named by its execution index, "0", "1", ...: TFLite operators have no names)."""
    path = Path(path)
    if model_format(path) == "tflite":
        return _tflite_node_facts(path)
    import onnx
    from onnx import helper

    from .compress.onnx_graph import count_macs, initializers, load, static_shapes

    model = load(path)
    try:
        counted = count_macs(model, input_shapes)
        layer_macs, unknown = counted["layers"], set(counted["unknown"])
        shapes = static_shapes(model, input_shapes)
        typed = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # shape inference rejects malformed graphs
        raise ModelError(f"{path}: shape inference failed at the manifest's input shapes "
                         f"{input_shapes or {}}: {exc}") from None
    inits = initializers(model)
    elem = {v.name: v.type.tensor_type.elem_type
            for v in list(typed.graph.value_info) + list(typed.graph.input) + list(typed.graph.output)}
    elem.update({t.name: t.data_type for t in model.graph.initializer})

    def nbytes(tensor):
        if tensor not in shapes or not elem.get(tensor):
            return None
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(elem[tensor])).itemsize
        return int(np.prod(shapes[tensor])) * itemsize

    out = []
    for i, node in enumerate(model.graph.node):
        name = node.name or node.output[0] or f"#{i}"
        params = sum(nbytes(t) or 0 for t in node.input if t in inits)
        moved = [nbytes(t) for t in list(node.input) + list(node.output) if t and t not in inits]
        key = node.name or node.output[0]
        macs = layer_macs[key] if key in layer_macs else (None if key in unknown else 0)
        out.append(NodeFacts(name, node.op_type, tuple(node.input), tuple(node.output), macs, params,
                             None if None in moved else sum(moved)))
    return out


def _tflite_node_facts(path: Path) -> list:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
    interp = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    produced = {i for op in ops for i in op["outputs"]}
    graph_inputs = {d["index"] for d in interp.get_input_details()}

    def nbytes(i):
        t = tensors[i]
        return int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize

    out = []
    for op in ops:
        inputs = [i for i in op["inputs"] if i >= 0]
        constants = [i for i in inputs if i not in produced and i not in graph_inputs]
        name = op["op_name"]
        macs = 0
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = tensors[inputs[1]]["shape"]
            per_output = int(w[1] * w[2] * (w[3] if name == "CONV_2D" else 1)) if name != "FULLY_CONNECTED" \
                else int(w[-1])
            macs = int(np.prod(tensors[op["outputs"][0]]["shape"])) * per_output
        # tensors by name: the MCU firmware's profile names each operator after its output tensor
        # (as TFLite's own profiler does), which the alignment finds through `outputs`
        out.append(NodeFacts(str(op["index"]), name, tuple(tensors[i]["name"] for i in inputs),
                             tuple(tensors[i]["name"] for i in op["outputs"]), macs,
                             sum(nbytes(i) for i in constants),
                             sum(nbytes(i) for i in inputs + list(op["outputs"]) if i not in constants)))
    return out
