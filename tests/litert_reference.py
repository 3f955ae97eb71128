"""What LiteRT's builtin kernels answer on the zoo's int8 models: the reference the MCU
engine must match bit for bit (not a test module)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.datasets import load


def litert_outputs(model: Path, x_int8: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(model),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outputs = []
    for x in x_int8:
        interp.set_tensor(inp["index"], x.reshape(inp["shape"]))
        interp.invoke()
        outputs.append(interp.get_tensor(out["index"]).reshape(-1).copy())
    return np.array(outputs)


def held_out_int8(exported) -> np.ndarray:
    """The held-out digits quantized as the host does before `db load`."""
    test = load("digits", "test")
    q = exported.input
    return np.clip(np.round(test.x / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)
