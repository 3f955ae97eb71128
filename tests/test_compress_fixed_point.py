import numpy as np
import pytest

from compress_fixtures import build
from onnx_models import cnn, mlp
from harness.compress import onnx_graph as g
from harness.compress.fixed_point import activation_tensors, best_fl, quantize
from harness.errors import ConfigError

MODELS = {"mlp": mlp(), "mlp-matmul": mlp(matmul=True), "cnn": cnn()}


@pytest.mark.parametrize("name", MODELS)
def test_32_bits_reproduces_base(tmp_path, name):
    result, base, x = build(tmp_path, MODELS[name], "fixed-point", {"weight_bits": 32, "activation_bits": 32})
    np.testing.assert_array_equal(g.run(g.load(result.path), x), g.run(g.load(base), x))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("bits", [8, 6, 12])
def test_qdq_with_power_of_two_scales(tmp_path, name, bits):
    result, base, x = build(tmp_path, MODELS[name], "fixed-point", {"weight_bits": bits, "activation_bits": bits})
    model = g.load(result.path)
    ops = [n.op_type for n in model.graph.node]
    n_layers = len(g.weight_layers(g.load(base)))
    n_tensors = len(activation_tensors(g.load(base), True))     # layer inputs and outputs
    assert n_tensors > n_layers
    assert ops.count("DequantizeLinear") == n_layers + n_tensors   # one per weight, one per tensor
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            scale = float(g.get_array(model, node.input[1]))
            assert np.log2(scale) == round(np.log2(scale))
    assert ("Clip" in ops) == (bits not in (8, 16))
    assert result.storage_bytes < g.dense_weight_bytes(g.load(base))
    assert result.path.stat().st_size < base.stat().st_size
    out, ref = g.run(model, x), g.run(g.load(base), x)
    assert np.abs(out - ref).max() < (0.2 if bits >= 8 else 0.5)
    for facts in result.info["weights"].values():
        assert facts["bits"] == bits


def test_fractional_length_minimises_error():
    v = np.array([0.5, -0.25, 0.125, 0.9])
    fl, err = best_fl(v, 8)
    assert fl == 7 and err < 1e-4      # 0.9 * 128 = 115 fits in int8
    big = np.array([100.0, -50.0])
    assert best_fl(big, 8)[0] == 0
    assert quantize(np.array([10.0]), 4, 0)[0] == 7    # saturates


@pytest.mark.parametrize("params,field", [({"weight_bits": 0}, "weight_bits"), ({"activation_bits": 20}, "activation_bits"),
                                          ({"weight_bits": 1}, "weight_bits"), ({"samples": 0}, "samples")])
def test_malformed_parameters(tmp_path, params, field):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, mlp(), "fixed-point", params)
    assert "fixed-point" in str(err.value) and field in str(err.value)


@pytest.mark.parametrize("name", MODELS)
def test_params_and_macs_see_through_qdq(tmp_path, name):
    result, base, _ = build(tmp_path, MODELS[name], "fixed-point", {"weight_bits": 8, "activation_bits": 8})
    q, b = g.load(result.path), g.load(base)
    assert g.count_macs(q)["macs"] == g.count_macs(b)["macs"] > 0
    assert g.count_params(q)["params"] == g.count_params(b)["params"]
