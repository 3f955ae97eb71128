import numpy as np
import pytest

from compress_fixtures import build, cnn, mlp
from harness.compress import onnx_graph as g
from harness.compress.low_rank import energy_rank, factor
from harness.errors import ConfigError

MODELS = {"mlp": mlp(), "mlp-matmul": mlp(matmul=True), "cnn": cnn()}


@pytest.mark.parametrize("name", MODELS)
def test_full_rank_reproduces_base(tmp_path, name):
    result, base, x = build(tmp_path, MODELS[name], "low-rank", {"energy": 1.0})
    np.testing.assert_array_equal(g.run(g.load(result.path), x), g.run(g.load(base), x))


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
