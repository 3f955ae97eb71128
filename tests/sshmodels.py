"""Small ONNX models built on the fly for the SSH tests (no committed binaries needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def matmul_model(path: Path, n: int = 64, seed: int = 0) -> Path:
    """y = x @ W with W n x n float32: a model of about 4*n*n bytes (n=2236 is ~20 MB)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.RandomState(seed).standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by older onnxruntime builds on older board images
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
