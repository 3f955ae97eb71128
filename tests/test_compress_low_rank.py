import numpy as np
import pytest

from compress_fixtures import build
from onnx_models import cnn, mlp
from harness.compress import onnx_graph as g
from harness.compress.low_rank import energy_rank, factor
from harness.errors import ConfigError, ModelError

MODELS = {"mlp": mlp(), "mlp-matmul": mlp(matmul=True), "cnn": cnn()}


@pytest.mark.parametrize("name", MODELS)
def test_full_rank_changes_nothing_and_says_so(tmp_path, name):
    # at full energy no factorization is smaller than its layer: the technique would write the
    # base again, so it refuses (mutation checked: without the refusal it builds the base)
    with pytest.raises(ModelError, match="no layer's factors at energy 1.0 are smaller .* nothing to change"):
        build(tmp_path, MODELS[name], "low-rank", {"energy": 1.0})


@pytest.mark.parametrize("name", MODELS)
def test_full_rank_factors_reproduce_base(tmp_path, name):
    result, base, x = build(tmp_path, MODELS[name], "low-rank", {"energy": 1.0, "only_if_smaller": False})
    assert all(f["factorized"] and f["rank"] == f["full_rank"] for f in result.info["layers"].values())
    np.testing.assert_allclose(g.run(g.load(result.path), x), g.run(g.load(base), x), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_low_energy_shrinks_the_model(tmp_path, name):
    result, base, x = build(tmp_path, MODELS[name], "low-rank", {"energy": 0.5})
    small, big = g.load(result.path), g.load(base)
    assert g.count_params(small)["params"] < g.count_params(big)["params"]
    assert any(f["factorized"] for f in result.info["layers"].values())
    assert g.run(small, x).shape == (len(x), 10)
    ops = [n.op_type for n in small.graph.node]
    assert len(ops) > len(big.graph.node)


def test_conv_split_is_kxk_then_1x1(tmp_path):
    result, _, _ = build(tmp_path, cnn(), "low-rank", {"rank": 2, "fc": False})
    convs = [n for n in g.load(result.path).graph.node if n.op_type == "Conv"]
    assert len(convs) == 4
    model = g.load(result.path)
    shapes = [g.get_array(model, n.input[1]).shape for n in convs]
    assert shapes[2] == (2, 8, 3, 3) and shapes[3] == (16, 2, 1, 1)


def test_energy_rank():
    s = np.array([3.0, 2.0, 1.0, 0.0])
    assert energy_rank(s, 1.0) == 3 and energy_rank(s, 0.6) == 1 and energy_rank(s, 0.9) == 2
    a, b, r, kept = factor(np.eye(4), 0.5)
    assert r == 2 and abs(kept - 0.5) < 1e-9


@pytest.mark.parametrize("params,field", [({"rank": 0}, "rank"), ({"energy": 0}, "energy"),
                                          ({"energy": 1.5}, "energy"), ({"rank": 2.5}, "rank")])
def test_malformed_parameters(tmp_path, params, field):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, mlp(), "low-rank", params)
    assert "low-rank" in str(err.value) and field in str(err.value)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("method", ["response", "svd"])
def test_both_methods_at_full_rank_reproduce_base(tmp_path, name, method):
    result, base, x = build(tmp_path, MODELS[name], "low-rank",
                            {"energy": 1.0, "method": method, "only_if_smaller": False})
    assert result.info["method"] == method
    np.testing.assert_allclose(g.run(g.load(result.path), x), g.run(g.load(base), x), atol=1e-5)


def test_response_reconstruction_beats_weight_svd_on_the_layer_responses():
    from harness.compress.low_rank import factor_response
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 24)).astype(np.float32)
    b = rng.normal(size=16).astype(np.float32)
    x = np.maximum(rng.normal(size=(500, 24)) @ rng.normal(size=(24, 24)) * 0.3 + 1, 0)  # correlated inputs
    y = x @ w.T + b
    a1, b1, r1, _, bias = factor_response(w, y, b, 0.9, rank=4)
    a2, b2, r2, _ = factor(w, 0.9, rank=4)
    err_response = np.abs(x @ a1.T @ b1.T + bias - y).mean()
    err_svd = np.abs(x @ a2.T @ b2.T + b - y).mean()
    assert r1 == r2 == 4 and err_response < err_svd


def test_response_needs_calibration(tmp_path):
    import onnx
    from harness.compress import BuildContext, get_technique
    onnx.save(mlp(), str(tmp_path / "m.onnx"))
    ctx = BuildContext(base=tmp_path / "m.onnx", out=tmp_path / "o.onnx", params={"method": "response"},
                       source="models/t.yaml: variants[0] (lr)")
    with pytest.raises(ConfigError) as err:
        get_technique("low-rank").build(ctx)
    assert "method" in str(err.value)
    ctx.params = {}
    assert get_technique("low-rank").build(ctx).info["method"] == "svd"
