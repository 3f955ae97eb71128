"""Check the committed zoo files with the harness's own runtimes (no torch, no TensorFlow).

    python3 models/check_zoo.py

Loads every models/digits_*.onnx in onnxruntime and every models/digits_*.tflite in LiteRT
(ai_edge_litert), runs the digits test split one sample at a time (batch is static 1),
and prints a Markdown table: file, bytes, input/output dtype and shape, test top-1, and
for .tflite files the builtin operators the interpreter sees.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness.datasets import digits_split  # noqa: E402

FILES = [
    "digits_cnn.onnx", "digits_cnn_fp32.tflite", "digits_cnn_fp16.tflite", "digits_cnn_int8.tflite",
    "digits_mlp.onnx", "digits_mlp_fp32.tflite", "digits_mlp_fp16.tflite", "digits_mlp_int8.tflite",
]


def to_layout(x: np.ndarray, shape) -> np.ndarray:
    """(n, 64) pixels in [0,1] -> (n, *shape[1:]) for NCHW [1,1,8,8], NHWC [1,8,8,1] or [1,64]."""
    return x.reshape((len(x), *[int(d) for d in shape[1:]]))


def predict_onnx(path: Path, x: np.ndarray):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    i, o = sess.get_inputs()[0], sess.get_outputs()[0]
    xs = to_layout(x, i.shape)
    probs = np.concatenate([sess.run([o.name], {i.name: row[None]})[0] for row in xs])
    info = {"in": f"{i.name} {i.type} {i.shape}", "out": f"{o.name} {o.type} {o.shape}", "ops": ""}
    return probs, info


def predict_tflite(path: Path, x: np.ndarray):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default XNNPACK delegate, so the op list is the file's own operators.
    it = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    xs = to_layout(x, i["shape"])
    outs = []
    for row in xs:
        row = row[None]
        if i["dtype"] == np.int8:
            s, z = i["quantization"]
            row = np.clip(np.round(row / s + z), -128, 127).astype(np.int8)
        it.set_tensor(i["index"], row)
        it.invoke()
        y = it.get_tensor(o["index"])
        if o["dtype"] == np.int8:
            s, z = o["quantization"]
            y = (y.astype(np.float32) - z) * s
        outs.append(y)
    ops = sorted({op["op_name"] for op in it._get_ops_details()})
    info = {
        "in": f"{np.dtype(i['dtype']).name} {i['shape'].tolist()} q={tuple(map(float, i['quantization']))}",
        "out": f"{np.dtype(o['dtype']).name} {o['shape'].tolist()} q={tuple(map(float, o['quantization']))}",
        "ops": " ".join(ops),
    }
    return np.concatenate(outs), info


def main() -> None:
    test = digits_split()["test"]
    print("| file | bytes | input | output | test top-1 | ops |")
    print("|---|---:|---|---|---:|---|")
    for name in FILES:
        path = HERE / name
        predict = predict_onnx if name.endswith(".onnx") else predict_tflite
        probs, info = predict(path, test.x)
        acc = float((probs.argmax(1) == test.y).mean())
        print(f"| {name} | {path.stat().st_size} | {info['in']} | {info['out']} | {acc:.4f} | {info['ops']} |")


if __name__ == "__main__":
    main()
