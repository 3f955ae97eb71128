"""Model manifests, variant building and the content-addressed cache."""
import numpy as np
import onnxruntime as ort
import pytest

from harness import variant_build
from harness.errors import ConfigError, ModelError
from harness.modelinfo import facts
from paths import ROOT


def manifest(tmp_path, text, name="m.yaml"):
    (tmp_path / name).write_text(text)
    return tmp_path / name


def test_demo_manifests_load_and_counts_are_right():
    cnn, mlp = variant_build.load_manifests(ROOT / "models")
    assert (cnn.name, mlp.name) == ("digits-cnn", "digits-mlp")
    # By hand: conv 8*9+8, depthwise 8*9+8, 1x1 16*8+16, fc 64*10+10 = 954 parameters;
    # MACs 512*9 + 512*9 + 256*8 + 640 = 11904.
    f = facts(ROOT / "models" / "digits_cnn.onnx")
    assert (f.params, f.macs) == (954, 11904)
    f = facts(ROOT / "models" / "digits_mlp.onnx")
    assert (f.params, f.macs) == (64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10, 64 * 32 + 32 * 16 + 16 * 10)
    assert facts(ROOT / "models" / "digits_cnn_fp32.tflite").macs in (0, 11904)


def test_build_is_cached_by_content(tmp_path):
    m = variant_build.load_manifests(ROOT / "models")[1]
    recipe = m.recipe("fp16")
    first = variant_build.build_variant(m, recipe, tmp_path)
    stamp = first.path.stat().st_mtime_ns
    again = variant_build.build_variant(m, recipe, tmp_path)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    assert again.sha256 == first.sha256
    assert first.size_bytes < facts(m.base).size_bytes  # fp16 halves the weights
    other = variant_build.build_variant(m, m.recipe("int8-dynamic"), tmp_path)
    assert other.path.parent != first.path.parent


def test_static_int8_is_calibrated_and_accurate(tmp_path):
    m = variant_build.load_manifests(ROOT / "models")[0]
    v = variant_build.build_variant(m, m.recipe("int8-static"), tmp_path)
    ops = {n.op_type for n in __import__("onnx").load(str(v.path)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert v.host_accuracy > 0.9
    assert v.info["calibration_samples"] == 200


def test_dataset_file_is_the_held_out_split(tmp_path):
    m = variant_build.load_manifests(ROOT / "models")[0]
    data = np.load(variant_build.dataset_file(m, tmp_path))
    from harness.datasets import digits_split

    split = digits_split()
    assert data["x"].shape == (360, 64)
    assert np.array_equal(data["y"], split["test"].y)
    # calibration is a slice of the training part, never of the evaluation part
    assert np.array_equal(split["calibration"].x, split["train"].x[:200])
    assert len(split["train"].y) + len(split["test"].y) == 1797


@pytest.mark.parametrize("text, words", [
    ("name: x\nbase: a.onnx\nvariants: [{name: v, technique: prune-everything}]\n",
     "variants[0].technique: expected one of"),
    ("name: x\nbase: a.onnx\nvariants: [{name: v, technique: int8-static, params: {per_chanel: true}}]\n",
     "params.per_chanel: unknown field"),
    ("name: x\nbase: a.onnx\nvariants: [{name: v, technique: fp32}, {name: v, technique: fp16}]\n",
     "variants[1].name: expected a name not used"),
    ("name: x\nbase: a.onnx\nvariants: [{name: v, file: model.pt}]\n", "variants[0].file: expected a .onnx or .tflite"),
    ("name: x\nbase: a.onnx\ninputs: [{name: i, shape: [1, -1]}]\nvariants: []\n", "inputs[0].shape"),
    ("name: x\nvariants: []\n", "base: it is missing"),
    ("name: x\nbase: a.onnx\ndataset: imagenet\nvariants: []\n", "dataset: expected one of digits"),
])
def test_manifest_errors_name_the_field(tmp_path, text, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        variant_build.load_manifest(manifest(tmp_path, text))


def test_bad_parameter_value_names_the_recipe(tmp_path):
    (tmp_path / "a.onnx").write_bytes((ROOT / "models" / "digits_mlp.onnx").read_bytes())
    path = manifest(tmp_path, "name: x\nbase: a.onnx\ndataset: digits\n"
                              "variants: [{name: v, technique: int8-static, params: {samples: 0}}]\n")
    m = variant_build.load_manifest(path)
    with pytest.raises(ConfigError, match=r"variants\[0\] \(v, int8-static\): params.samples: expected an integer in 1..inf, got 0"):
        variant_build.build_variant(m, m.variants[0], tmp_path / "cache")


def test_missing_and_corrupt_model_files(tmp_path):
    path = manifest(tmp_path, "name: x\nbase: gone.onnx\nvariants: [{name: v, technique: fp32}, "
                              "{name: t, file: gone.tflite}]\n")
    m = variant_build.load_manifest(path)
    with pytest.raises(ModelError, match="base: model file .*gone.onnx not found"):
        variant_build.build_variant(m, m.variants[0], tmp_path)
    with pytest.raises(ModelError, match=r"variants\[1\] \(t, file\): file: model file .*gone.tflite not found"):
        variant_build.build_variant(m, m.variants[1], tmp_path)
    (tmp_path / "gone.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="gone.onnx: cannot read the ONNX model"):
        variant_build.build_variant(m, m.variants[0], tmp_path)


def test_variants_run_in_onnxruntime(tmp_path):
    m = variant_build.load_manifests(ROOT / "models")[0]
    for name in ("fp32", "fp16", "int8-dynamic", "int8-static"):
        v = variant_build.build_variant(m, m.recipe(name), tmp_path, evaluate_accuracy=False)
        sess = ort.InferenceSession(str(v.path), providers=["CPUExecutionProvider"])
        out = sess.run(None, {"input": np.zeros((1, 1, 8, 8), np.float32)})[0]
        assert out.shape == (1, 10) and abs(float(out.sum()) - 1.0) < 1e-2


def test_a_build_writes_only_into_its_own_cache(tmp_path, monkeypatch):
    # the sensitivity scan's calibration data went to ./.harness-cache whatever the cache was
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    m = variant_build.load_manifest(ROOT / "models" / "compression" / "digits_mlp.yaml")
    variant = variant_build.build_variant(m, m.recipe("prune-50"), tmp_path / "cache", evaluate_accuracy=False)
    assert variant.path.is_file()
    assert (tmp_path / "cache" / "datasets").is_dir()
    assert not (cwd / ".harness-cache").exists()


def test_a_variant_the_host_cannot_evaluate_is_an_error_naming_it(tmp_path):
    # It was silently host_accuracy=None (the accuracy suite then skipped the variant); only a
    # runtime missing on this host (a .tflite without LiteRT) may leave the accuracy to the device.
    m = variant_build.load_manifests(ROOT / "models")[1]
    cache = tmp_path / "cache"
    (cache / "datasets").mkdir(parents=True)
    (cache / "datasets" / "digits-test.npz").write_bytes(b"not an npz")   # a damaged cache file
    with pytest.raises(ModelError, match=r"digits_mlp.yaml: variants\[0\] \(fp32, fp32\): host accuracy: "
                                         r".*cannot read dataset"):
        variant_build.build_variant(m, m.recipe("fp32"), cache)


def test_a_files_hash_is_memoised_per_version_of_the_file(tmp_path):
    import hashlib
    import os

    from harness.modelinfo import sha256_file

    path = tmp_path / "model.bin"
    path.write_bytes(b"a" * 100)
    assert sha256_file(path) == hashlib.sha256(b"a" * 100).hexdigest() == sha256_file(path)
    path.write_bytes(b"b" * 100)                                  # same size, a new version
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))   # mtime moves on a coarse filesystem too
    assert sha256_file(path) == hashlib.sha256(b"b" * 100).hexdigest()
