import numpy as np
import pytest

from compress_fixtures import build
from onnx_models import cnn, mlp
from harness.compress import onnx_graph as g
from harness.compress.pruning import allocate, prune_array
from harness.errors import ConfigError


@pytest.mark.parametrize("model", [mlp(), mlp(matmul=True), cnn()], ids=["mlp", "mlp-matmul", "cnn"])
def test_sparsity_zero_reproduces_base(tmp_path, model):
    result, base, x = build(tmp_path, model, "prune-magnitude", {"sparsity": 0.0})
    np.testing.assert_array_equal(g.run(g.load(result.path), x), g.run(g.load(base), x))
    assert result.info["sparsity"] == 0.0
    assert result.info["post_training"] is True and result.info["fine_tuned"] is False


@pytest.mark.parametrize("model", [mlp(), cnn()], ids=["mlp", "cnn"])
def test_reaches_target_sparsity_and_storage_shrinks(tmp_path, model):
    result, base, x = build(tmp_path, model, "prune-magnitude", {"sparsity": 0.7})
    pruned = g.load(result.path)
    stats = g.count_params(pruned)
    layer_weights = sum(f["weights"] for f in result.info["layers"].values())
    zeros = stats["params"] - stats["nonzero_params"]
    assert zeros >= 0.7 * layer_weights - 1
    assert result.info["allocation"] == "sensitivity"
    assert result.storage_bytes < g.dense_weight_bytes(g.load(base))
    assert g.count_macs(pruned)["sparse_macs"] < g.count_macs(pruned)["macs"]
    for facts in result.info["layers"].values():
        assert 0.0 <= facts["sparsity"] <= 0.97


def test_without_evaluate_every_layer_gets_the_target(tmp_path):
    result, _, _ = build(tmp_path, mlp(), "prune-magnitude", {"sparsity": 0.5}, evaluate=False)
    assert result.info["allocation"] == "uniform"
    assert all(abs(f["sparsity"] - 0.5) < 0.01 for f in result.info["layers"].values())


def test_prune_array_exact_count_and_threshold():
    w = np.arange(-50, 50, dtype=np.float32).reshape(10, 10)
    pruned, threshold = prune_array(w, 0.3)
    assert np.count_nonzero(pruned == 0) == 30
    assert np.all(np.abs(w[pruned != 0]) >= threshold)


def test_allocate_prunes_insensitive_layer_harder():
    drops = {"a": {s: 0.5 * s for s in np.round(np.arange(0.05, 0.951, 0.05), 4)},
             "b": {s: 0.0 for s in np.round(np.arange(0.05, 0.951, 0.05), 4)}}
    chosen = allocate({"a": 100, "b": 100}, drops, 0.5, 0.95)
    assert chosen["b"] > chosen["a"]
    assert (chosen["a"] + chosen["b"]) / 2 >= 0.5 - 1e-9


def test_fine_tune_hook_keeps_the_mask(tmp_path):
    calls = []

    def hook(src, dst, project):
        model = g.load(src)
        weights = {l.weight: g.get_array(model, l.weight) + 0.01 for l in g.weight_layers(model)}
        for name, value in project(weights).items():   # a "training step" then the projection
            g.set_array(model, name, value)
        calls.append(src)
        import onnx
        onnx.save(model, str(dst))

    result, _, _ = build(tmp_path, mlp(), "prune-magnitude", {"sparsity": 0.6}, train_hook=hook)
    assert calls and result.info["fine_tuned"] is True and result.info["post_training"] is False
    assert result.info["sparsity"] >= 0.6 - 0.01
    stats = g.count_params(g.load(result.path))
    assert stats["params"] - stats["nonzero_params"] >= 0.6 * 2720 - 1


@pytest.mark.parametrize("params,field", [({"sparsity": 1.5}, "sparsity"), ({"sparsity": "lots"}, "sparsity"),
                                          ({"max_layer_sparsity": -1}, "max_layer_sparsity")])
def test_malformed_parameters_name_recipe_and_field(tmp_path, params, field):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, mlp(), "prune-magnitude", params)
    assert "prune-magnitude" in str(err.value) and field in str(err.value)
