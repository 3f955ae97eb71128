import numpy as np
import pytest

from compress_fixtures import build
from onnx_models import cnn, mlp
from harness.compress import onnx_graph as g
from harness.errors import ConfigError
import paths

MODELS = {"mlp": mlp(), "mlp-matmul": mlp(matmul=True), "cnn": cnn(),
          "cnn-bn-reshape": cnn(batchnorm=True, reshape=True)}


@pytest.mark.parametrize("name", MODELS)
def test_ratio_zero_reproduces_base(tmp_path, name):
    result, base, x = build(tmp_path, MODELS[name], "prune-structured", {"ratio": 0.0})
    np.testing.assert_allclose(g.run(g.load(result.path), x), g.run(g.load(base), x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", MODELS)
def test_pruned_graph_is_smaller_valid_and_runs(tmp_path, name):
    result, base, x = build(tmp_path, MODELS[name], "prune-structured", {"ratio": 0.5})
    small, big = g.load(result.path), g.load(base)
    assert g.count_params(small)["params"] < g.count_params(big)["params"]
    assert g.count_macs(small)["macs"] < g.count_macs(big)["macs"]
    assert result.path.stat().st_size < base.stat().st_size
    out = g.run(small, x)                       # onnxruntime runs it
    assert out.shape == (len(x), 10)
    np.testing.assert_allclose(out.sum(1), 1, rtol=1e-5)
    for facts in result.info["layers"].values():
        assert facts["kept"] <= facts["channels"]
    assert any(f["kept"] < f["channels"] for f in result.info["layers"].values())


def test_shapes_shrink_consistently():
    from harness.compress.structured import prune_channels
    model = cnn()
    prune_channels(model, 0.5)
    shapes = {l.name: g.get_weight(model, l).shape for l in g.weight_layers(model)}
    assert shapes["conv0"] == (4, 1, 3, 3) and shapes["conv1"] == (8, 4, 3, 3)
    assert shapes["fc0"] == (16, 8 * 16) and shapes["fc1"] == (10, 16)


def test_removed_channels_are_the_weakest():
    from harness.compress.structured import channels_to_keep
    w = np.array([[3.0], [0.1], [2.0], [0.2]])
    np.testing.assert_array_equal(channels_to_keep(w, 0.5), [0, 2])


@pytest.mark.parametrize("params,field", [({"ratio": 1.5}, "ratio"), ({"ratio": -0.1}, "ratio"),
                                          ({"ratio": "half"}, "ratio")])
def test_malformed_parameters(tmp_path, params, field):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, mlp(), "prune-structured", params)
    assert "prune-structured" in str(err.value) and field in str(err.value)


ZOO_CNN = paths.MODELS / "digits_cnn.onnx"


@pytest.mark.skipif(not ZOO_CNN.exists(), reason="zoo model not present")
def test_zoo_cnn_depthwise_channels_follow_their_producer(tmp_path):
    result, base, x = build(tmp_path, g.load(ZOO_CNN), "prune-structured", {"ratio": 0.5})
    small = g.load(result.path)
    assert g.count_params(small)["params"] < g.count_params(g.load(base))["params"]
    assert g.run(small, x).shape == (len(x), 10)
    assert sum(f["kept"] < f["channels"] for f in result.info["layers"].values()) >= 2
