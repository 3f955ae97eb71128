import numpy as np
import pytest

from compress_fixtures import build
from onnx_models import cnn, mlp
from harness.compress import onnx_graph as g
from harness.compress.mixed_precision import choose
from harness.errors import ConfigError

MODELS = {"mlp": mlp(), "mlp-matmul": mlp(matmul=True), "cnn": cnn()}


@pytest.mark.parametrize("name", MODELS)
def test_full_budget_keeps_fp32_and_reproduces_base(tmp_path, name):
    result, base, x = build(tmp_path, MODELS[name], "mixed-precision", {"budget": 1.0})
    assert all(f["precision"] == "fp32" for f in result.info["layers"].values())
    np.testing.assert_array_equal(g.run(g.load(result.path), x), g.run(g.load(base), x))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("budget", [0.6, 0.3])
def test_budget_is_respected_and_model_runs(tmp_path, name, budget):
    result, base, x = build(tmp_path, MODELS[name], "mixed-precision", {"budget": budget})
    assert result.info["weight_ratio"] <= budget
    assert result.info["allocation"] == "sensitivity"
    assert result.path.stat().st_size < base.stat().st_size
    out = g.run(g.load(result.path), x)
    assert np.abs(out - g.run(g.load(base), x)).max() < 0.3
    assert {f["precision"] for f in result.info["layers"].values()} - {"fp32"}


def test_choose_spends_the_budget_on_the_sensitive_layer():
    sizes = {"a": {"fp32": 400, "fp16": 200, "int8": 100}, "b": {"fp32": 400, "fp16": 200, "int8": 100}}
    drops = {"a": {"fp32": 0, "fp16": 0.0, "int8": 0.3}, "b": {"fp32": 0, "fp16": 0.0, "int8": 0.0}}
    assert choose(sizes, drops, 300) == {"a": "fp16", "b": "int8"}
    assert choose(sizes, drops, 150) is None


def test_infeasible_budget_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, mlp(), "mixed-precision", {"budget": 0.1})
    assert "mixed-precision" in str(err.value) and "budget" in str(err.value)


@pytest.mark.parametrize("params,field", [({"budget": 0}, "budget"), ({"budget": 2}, "budget"),
                                          ({"samples": 0}, "samples")])
def test_malformed_parameters(tmp_path, params, field):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, mlp(), "mixed-precision", params)
    assert "mixed-precision" in str(err.value) and field in str(err.value)
