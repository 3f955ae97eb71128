"""Export of full-int8 .tflite models to the firmware's model source: TFLite's float-side
arithmetic reproduced exactly, and models the engine cannot run refused by name."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from harness.mcu import export as ex  # noqa: E402
from paths import MODELS

ZOO_INT8 = sorted(MODELS.glob("*_int8.tflite"))


def test_quantize_multiplier_matches_tflite():
    assert ex.quantize_multiplier(0.0) == (0, 0)
    assert ex.quantize_multiplier(0.5) == (1 << 30, 0)
    assert ex.quantize_multiplier(1.0) == (1 << 30, 1)
    # a significand that rounds up to 2^31 is halved and the shift bumped, as TFLite does
    assert ex.quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    m, s = ex.quantize_multiplier(0.0123)
    assert abs(m * 2.0 ** (s - 31) - 0.0123) < 1e-9


def test_activation_ranges_use_float32_division():
    assert ex.activation_range(0, 0.1, 3) == (-128, 127)
    assert ex.activation_range(1, 0.1, -128) == (-128, 127)
    assert ex.activation_range(3, 6.0 / 255, -128) == (-128, 127)
    assert ex.activation_range(3, 0.05, -128) == (-128, -8)


@pytest.mark.parametrize("model", ZOO_INT8, ids=lambda p: p.name)
def test_zoo_int8_models_export(model, tmp_path):
    exported = ex.export(model)
    exported.write(tmp_path)
    source = (tmp_path / "model.c").read_text()
    assert "const eng_model_t eng_model" in source
    assert exported.input["bytes"] == 64 and exported.output["bytes"] == 10
    assert set(exported.ops) <= set(ex.SUPPORTED)
    assert exported.arena_bytes > 0


def _with_op_renamed(model: Path, old: str, new: str, out: Path) -> Path:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(model.read_bytes(), 0)
    old_code, new_code = getattr(schema.BuiltinOperator, old), getattr(schema.BuiltinOperator, new)
    for code in m.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == old_code:
            code.builtinCode = code.deprecatedBuiltinCode = new_code
    builder = flatbuffers.Builder(0)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    out.write_bytes(bytes(builder.Output()))
    return out


def test_an_unknown_operator_is_refused_with_its_name(tmp_path):
    model = _with_op_renamed(MODELS / "digits_mlp_int8.tflite", "SOFTMAX", "TANH", tmp_path / "tanh.tflite")
    with pytest.raises(ex.ExportError, match=r"operator\(s\) TANH not supported by the MCU engine"):
        ex.export(model)


def test_a_float_model_is_refused(tmp_path):
    with pytest.raises(ex.ExportError, match="full-int8"):
        ex.export(MODELS / "digits_mlp_fp32.tflite")


def test_the_arena_keeps_the_input_live_and_reuses_the_rest():
    exported = ex.export(MODELS / "digits_cnn_int8.tflite")
    # conv1 and depthwise outputs are 512 bytes each; a plan without reuse would need > 1.3 KiB
    assert exported.arena_bytes < 64 + 512 + 512 + 128 + 256
    assert np.prod(exported.input["shape"]) == 64
