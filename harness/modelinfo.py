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

FORMATS = {".onnx": "onnx", ".tflite": "tflite"}


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
