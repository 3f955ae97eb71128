"""Manifests are checked against their model when they load, and a build that fails is a
row with its reason, never a stop (harness variants build)."""
import shutil

import numpy as np
import pytest

from harness import variant_build
from harness.cli import main
from harness.errors import ConfigError
from paths import ROOT

CNN = ROOT / "models" / "digits_cnn.onnx"


def write(tmp_path, body, base=CNN):
    shutil.copyfile(base, tmp_path / base.name)
    path = tmp_path / "m.yaml"
    path.write_text(f"name: m\nbase: {base.name}\n{body}")
    return path


@pytest.mark.parametrize("body,field,expected", [
    ("inputs: [{name: image}]\n", r"inputs\[0\]\.name", r"an input of digits_cnn.onnx \(input\)"),
    ("inputs: [{name: input, low: 1, high: 0}]\n", r"inputs\[0\]\.high", "a number >= low"),
    ("inputs: [{name: input, high: max}]\n", r"inputs\[0\]\.high", "a finite number"),
    ("inputs: [{name: input, low: .nan}]\n", r"inputs\[0\]\.low", "a finite number"),
    ("inputs: [{name: input, dtype: int64, low: 0.5}]\n", r"inputs\[0\]\.low", "an integer for dtype int64"),
    ("inputs: [{name: input, dtype: float8}]\n", r"inputs\[0\]\.dtype", "one of float32"),
    ("min_cosine: .nan\n", "min_cosine", "a finite number"),
    ("calibration: absent.npz\n", "calibration", "an existing .npz file"),
    ("agreement: {samples: 0}\n", r"agreement\.samples", "an integer in 1"),
])
def test_bad_manifest_fields_are_named(tmp_path, body, field, expected):
    # mutation checked: _check_range removed -> high: max loads and later crashes the runner
    path = write(tmp_path, body + "variants: [{name: fp32, technique: fp32}]\n")
    with pytest.raises(ConfigError, match=rf"m\.yaml: {field}: expected {expected}"):
        variant_build.load_manifest(path)


def test_a_technique_on_a_tflite_base_is_refused_at_load(tmp_path):
    path = write(tmp_path, "variants: [{name: p, technique: prune-magnitude}]\n",
                 base=ROOT / "models" / "digits_cnn_fp32.tflite")
    with pytest.raises(ConfigError, match=r"variants\[0\]\.technique: expected a technique that accepts a tflite "
                                          r"base \(p: prune-magnitude accepts onnx\)"):
        variant_build.load_manifest(path)


def test_calibration_npz_is_used_and_shown(tmp_path):
    x = np.random.default_rng(0).random((12, 1, 1, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "calib.npz", input=x)
    path = write(tmp_path, "calibration: calib.npz\nvariants: [{name: q, technique: int8-static}]\n")
    m = variant_build.load_manifest(path)
    v = variant_build.build_variant(m, m.variants[0], tmp_path / "cache", evaluate_accuracy=False)
    assert v.info["calibration"] == "file calib.npz (12 samples)" and v.info["calibration_samples"] == 12
    np.savez(tmp_path / "calib.npz", image=x)
    with pytest.raises(ConfigError, match=r"calib\.npz: calibration: expected arrays named after the model's "
                                          r"inputs \(input\)"):
        variant_build.build_variant(variant_build.load_manifest(path), m.variants[0], tmp_path / "cache2", evaluate_accuracy=False)


def test_generated_calibration_without_a_dataset(tmp_path):
    path = write(tmp_path, "inputs: [{name: input, low: 0, high: 1}]\n"
                           "variants: [{name: q, technique: int8-static, params: {samples: 5}}]\n")
    m = variant_build.load_manifest(path)
    v = variant_build.build_variant(m, m.variants[0], tmp_path / "cache")
    assert v.info["calibration"].startswith("generated, seed 1: input float32 [1, 1, 8, 8] 0..1 (manifest)")
    assert v.agreement.source.startswith("generated, seed 0") and v.agreement.n == 16


def test_variants_build_prints_every_row_and_fails_when_one_fails(tmp_path, capsys):
    # mutation checked: the old loop (no try) stops at prune-magnitude with sparsity 0 and prints nothing
    path = write(tmp_path, "dataset: digits\nvariants:\n  - {name: fp32, technique: fp32}\n"
                           "  - {name: nothing, technique: prune-magnitude, params: {sparsity: 0.0}}\n"
                           "  - {name: half, technique: fp16}\n")
    code = main(["variants", "build", str(path), "--cache", str(tmp_path / "cache"), "-q"])
    out = capsys.readouterr().out
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("m/")}
    assert set(rows) == {"m/fp32", "m/nothing", "m/half"}
    assert "FAILED" in rows["m/nothing"] and "built" in rows["m/half"] and "2.00x" in rows["m/half"]
    assert "m/nothing: " in out and "changed nothing in the model" in out


def test_a_failing_build_names_the_variant(tmp_path):
    path = write(tmp_path, "variants: [{name: n, technique: ternary, params: {threshold: .nan}}]\n")
    m = variant_build.load_manifest(path)
    with pytest.raises(ConfigError, match=r"variants\[0\] \(n, ternary\): params\.threshold: expected a finite"):
        variant_build.build_variant(m, m.variants[0], tmp_path / "cache")


@pytest.mark.parametrize("variant,bits", [("fixed-point-8", 8), ("fixed-point-6", 6)])
def test_no_weight_ratio_above_its_bit_width_ceiling(tmp_path, variant, bits):
    # the old ratio (fp32 file with its graph / weight-only storage) gave 5.28x for 8 bits.
    # mutation checked: variant_table's weight ratio on size_bytes -> 5.28x > 4
    from harness.modelinfo import facts
    from harness.variant_table import Reference, variant_table

    m = variant_build.load_manifest(ROOT / "models" / "compression" / "digits_cnn.yaml")
    v = variant_build.build_variant(m, m.recipe(variant), tmp_path, evaluate_accuracy=False)
    base = facts(m.base, m.input_shapes)
    assert 1 < base.weight_bytes / v.weight_bytes <= 32 / bits
    row = variant_table([(v, Reference(base.size_bytes, base.weight_bytes))])[2]
    assert f"{base.weight_bytes / v.weight_bytes:.2f}x" in row
