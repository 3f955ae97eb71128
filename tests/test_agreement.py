"""harness.agreement: per-output errors, cosine and top-1 agreement between two models."""
import numpy as np
import pytest
from onnx import helper, numpy_helper

from harness.agreement import compare, compare_outputs, generated_feeds, npz_feeds, within
from harness.errors import ConfigError
from onnx_models import model_of, save


def test_identical_outputs_agree_fully():
    out = {"p": [np.array([[0.1, 0.7, 0.2]]), np.array([[0.5, 0.2, 0.3]])]}
    a = compare_outputs(out, out, "generated")
    assert a.cosine_min == 1.0 and a.max_abs == 0.0 and a.top1_agreement == 1.0 and a.n == 2


def test_errors_cosine_and_top1_are_per_output():
    base = {"p": [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])], "v": [np.array([3.0]), np.array([4.0])]}
    variant = {"p": [np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]])], "v": [np.array([3.0]), np.array([4.5])]}
    a = compare_outputs(base, variant, "x")
    assert a.outputs["p"]["cosine_min"] == pytest.approx(0.0) and a.outputs["p"]["top1_agreement"] == 0.5
    assert a.outputs["v"]["max_abs"] == pytest.approx(0.5) and a.outputs["v"]["mean_abs"] == pytest.approx(0.25)
    assert "top1_agreement" not in a.outputs["v"]          # one value per sample is no class score
    assert a.cosine_min == pytest.approx(0.0) and a.top1_agreement == 0.5
    ok, reason = within(a, 0.9)
    assert not ok and "p: cosine 0.000000" in reason and "v:" not in reason


def test_non_finite_variant_outputs_never_agree():
    a = compare_outputs({"y": [np.ones(3)]}, {"y": [np.array([1.0, np.nan, 1.0])]}, "x")
    assert a.cosine_min == 0.0 and a.max_abs == float("inf") and not a.outputs["y"]["finite"]


def test_generated_inputs_follow_the_manifest_ranges_and_say_where_they_came_from():
    inputs = [{"name": "x", "shape": ["n", 4], "dtype": "float32"}, {"name": "sr", "shape": [], "dtype": "int64"},
              {"name": "ids", "shape": [2, 3], "dtype": "int32"}]
    feeds, source = generated_feeds(inputs, [{"name": "sr", "low": 16000, "high": 16000},
                                             {"name": "x", "shape": [1, 4], "low": -1, "high": 1}], n=5)
    assert len(feeds) == 5 and all(f["sr"] == 16000 and f["sr"].dtype == np.int64 for f in feeds)
    assert all(f["x"].shape == (1, 4) and -1 <= f["x"].min() and f["x"].max() <= 1 for f in feeds)
    assert all(0 <= f["ids"].min() and f["ids"].max() <= 10 for f in feeds)
    assert "sr int64 [] 16000..16000 (manifest)" in source and "ids int32 [2, 3] 0..10 (default)" in source


def test_npz_inputs_must_name_every_input(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((3, 1, 4), np.float32))
    feeds, source = npz_feeds(tmp_path / "a.npz", [{"name": "x", "shape": [1, 4], "dtype": "float32"}])
    assert len(feeds) == 3 and source == "file a.npz (3 samples)"
    with pytest.raises(ConfigError, match=r"a\.npz: inputs: expected arrays named after the model's inputs \(x, y\)"):
        npz_feeds(tmp_path / "a.npz", [{"name": "x", "dtype": "float32"}, {"name": "y", "dtype": "float32"}])


def _scale_model(path, factor):
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32) * factor, "w")
    return save(model_of([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [("x", [1, 4])],
                         [("y", [1, 4])], [w]), path)


def test_compare_runs_both_models_on_the_same_inputs(tmp_path):
    # a scaled output keeps cosine 1 but not the absolute error: both are reported
    base, variant = _scale_model(tmp_path / "a.onnx", 1.0), _scale_model(tmp_path / "b.onnx", 2.0)
    feeds, source = generated_feeds([{"name": "x", "shape": [1, 4], "dtype": "float32"}], n=4)
    a = compare(base, variant, feeds, source)
    assert a.cosine_min == pytest.approx(1.0) and a.max_abs > 0.1 and a.n == 4
    assert a["cosine_min"] == a.cosine_min


def test_outputs_named_otherwise_are_paired_in_order(tmp_path):
    from harness import agreement

    def model(path, out_name):
        return save(model_of([helper.make_node("Relu", ["x"], [out_name])], [("x", [1, 4])],
                             [(out_name, [1, 4])]), path)

    import numpy as np

    feeds = [{"x": np.array([[1.0, -2.0, 3.0, 0.5]], dtype=np.float32)}]
    result = agreement.compare(model(tmp_path / "a.onnx", "probs"), model(tmp_path / "b.onnx", "Identity:0"),
                               feeds, "one probe")
    assert result.cosine_min == 1.0 and "paired by position (probs=Identity:0)" in result.source
