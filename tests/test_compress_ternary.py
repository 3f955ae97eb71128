import numpy as np
import onnx
import pytest

from compress_fixtures import build
from onnx_models import cnn, mlp
from harness.compress import onnx_graph as g
from harness.compress.ternary import ternarize
from harness.errors import ConfigError


def _ternary_model(model):
    """The same model with weights that are already ternary: a fixed point of the technique."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for layer in g.weight_layers(model):
        g.set_weight(model, layer, ternarize(g.get_weight(model, layer), 0.3)[0])
    return model


@pytest.mark.parametrize("model", [mlp(), cnn()], ids=["mlp", "cnn"])
def test_already_ternary_weights_are_unchanged(tmp_path, model):
    base_model = _ternary_model(model)
    result, base, x = build(tmp_path, base_model, "ternary", {"threshold": 0.05, "keep_first_last": False})
    np.testing.assert_array_equal(g.run(g.load(result.path), x), g.run(g.load(base), x))


@pytest.mark.parametrize("model", [mlp(), cnn()], ids=["mlp", "cnn"])
def test_weights_take_three_values_and_storage_shrinks(tmp_path, model):
    result, base, x = build(tmp_path, model, "ternary", {"threshold": 0.05})
    out = g.load(result.path)
    layers = g.weight_layers(out)
    for layer in layers[1:-1]:
        assert len(np.unique(g.get_weight(out, layer))) <= 3
    assert len(np.unique(g.get_weight(out, layers[0]))) > 3       # first layer kept
    assert result.storage_bytes < g.dense_weight_bytes(g.load(base))
    assert result.info["post_training"] is True


def test_ternarize_threshold_and_scales():
    w = np.array([-1.0, -0.5, 0.01, 0.4, 0.8], dtype=np.float32)
    t, wp, wn = ternarize(w, 0.3)
    np.testing.assert_allclose(t, [-0.75, -0.75, 0, 0.6, 0.6])
    assert wp == pytest.approx(0.6) and wn == pytest.approx(0.75)


@pytest.mark.parametrize("params,field", [({"threshold": 1.5}, "threshold"), ({"threshold": -0.1}, "threshold"),
                                          ({"keep_first_last": "yes"}, "keep_first_last")])
def test_malformed_parameters(tmp_path, params, field):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, mlp(), "ternary", params)
    assert "ternary" in str(err.value) and field in str(err.value)
