"""Building one technique on a test model (tests/onnx_models.py: mlp, cnn), without the zoo.

Weights are random; "accuracy" is agreement with the base model's own predictions on
random inputs, which is enough to see a sensitivity scan work.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from harness.compress import BuildContext, get_technique
from harness.compress import onnx_graph as g


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
