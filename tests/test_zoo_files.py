"""The committed demo zoo (models/digits_*.onnx, models/digits_*.tflite) loads and is accurate.

Uses only the harness's runtimes: onnxruntime, and LiteRT (ai_edge_litert) for .tflite files.
The files are made by models/make_zoo.py; see models/README.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.datasets import digits_split
from paths import MODELS

ACCURACY_FLOOR = 0.85
AGREEMENT_FLOOR = 0.99

ONNX_INPUT = {"cnn": [1, 1, 8, 8], "mlp": [1, 64]}
TFLITE_INPUT = {"cnn": [1, 8, 8, 1], "mlp": [1, 64]}
OUTPUT = [1, 10]
KINDS = ["cnn", "mlp"]
MODES = ["fp32", "fp16", "int8"]


@pytest.fixture(scope="module")
def test_split():
    return digits_split()["test"]


def _litert():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"ai_edge_litert is not importable ({exc}); install the 'litert' extra to check .tflite files")
    return Interpreter


def predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Outputs for every sample, through the on-device runner's own backends and input
    feeding (reshape to the model's layout, int8 quantization), as a board computes them.
    int8 outputs stay quantized: their argmax is the prediction (the scale is positive)."""
    from harness.ondevice import runner

    if path.suffix == ".tflite":
        _litert()
    backend = runner.make_backend({"model": str(path), "threads": 1})
    backend.init(backend.load(str(path)))
    inputs, _ = backend.signature()
    return np.concatenate([backend.set_and_run(feed)[0] for feed in runner.dataset_feeds(inputs, x)])


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_signature(kind):
    import onnx
    import onnxruntime as ort

    path = MODELS / f"digits_{kind}.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, inp.shape) == ("input", "tensor(float)", ONNX_INPUT[kind])
    assert (out.name, out.type, out.shape) == ("probabilities", "tensor(float)", OUTPUT)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_tflite_signature(kind, mode):
    it = _litert()(model_path=str(MODELS / f"digits_{kind}_{mode}.tflite"))
    it.allocate_tensors()
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    io_dtype = np.int8 if mode == "int8" else np.float32
    assert inp["shape"].tolist() == TFLITE_INPUT[kind]
    assert out["shape"].tolist() == OUTPUT
    assert inp["dtype"] == io_dtype and out["dtype"] == io_dtype
    if mode == "int8":
        assert inp["quantization"][0] > 0 and out["quantization"][0] > 0
        # Full integer: no float tensors anywhere (biases are int32).
        dtypes = {np.dtype(t["dtype"]).name for t in it.get_tensor_details()}
        assert not dtypes & {"float32", "float16"}, dtypes


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_accuracy(kind, test_split):
    probs = predict(MODELS / f"digits_{kind}.onnx", test_split.x)
    assert probs.shape == (len(test_split.y), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == test_split.y).mean() > ACCURACY_FLOOR


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_tflite_accuracy(kind, mode, test_split):
    probs = predict(MODELS / f"digits_{kind}_{mode}.tflite", test_split.x)
    assert (probs.argmax(1) == test_split.y).mean() > ACCURACY_FLOOR


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_and_tflite_fp32_agree(kind, test_split):
    p_onnx = predict(MODELS / f"digits_{kind}.onnx", test_split.x).argmax(1)
    p_tflite = predict(MODELS / f"digits_{kind}_fp32.tflite", test_split.x).argmax(1)
    assert (p_onnx == p_tflite).mean() >= AGREEMENT_FLOOR
