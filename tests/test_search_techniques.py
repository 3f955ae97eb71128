"""The per-layer choices a search makes, as technique parameters: bits per layer (fixed point),
sparsity per layer (pruning), energy per layer (low rank), precision per layer (mixed precision)."""
import numpy as np
import pytest

from compress_fixtures import build
from onnx_models import mlp
from harness.compress import onnx_graph as g
from harness.errors import ConfigError

MODEL = mlp()
LAYERS = [l.name for l in g.weight_layers(MODEL)]


def test_fixed_point_bits_per_layer(tmp_path):
    chosen = {LAYERS[0]: 4, LAYERS[1]: 8, LAYERS[2]: 16}
    result, base, _ = build(tmp_path, MODEL, "fixed-point",
                            {"weight_bits": 8, "activation_bits": 32, "layer_bits": chosen})
    assert {n: f["bits"] for n, f in result.info["weights"].items()} == chosen
    model = g.load(result.path)
    sizes = {n: int(np.prod(g.get_weight(g.load(base), l).shape))
             for n, l in zip(LAYERS, g.weight_layers(g.load(base)))}
    others = sum(t.dims[0] for t in g.load(base).graph.initializer if len(t.dims) == 1)   # fp32 biases
    assert result.storage_bytes == (sum(chosen[n] * sizes[n] for n in LAYERS) + 32 * others + 7) // 8
    ints = {t.name: t.data_type for t in model.graph.initializer if t.data_type in (3, 5) and t.dims}
    assert sorted(ints.values()) == [3, 3, 5]      # int8, int8, int16


def test_fixed_point_32_bits_leaves_a_layer_float(tmp_path):
    result, _, _ = build(tmp_path, MODEL, "fixed-point",
                         {"weight_bits": 8, "activation_bits": 32, "layer_bits": {LAYERS[1]: 32}})
    assert sorted(result.info["weights"]) == sorted([LAYERS[0], LAYERS[2]])


def test_pruning_sparsity_per_layer(tmp_path):
    chosen = {LAYERS[0]: 0.9, LAYERS[1]: 0.0, LAYERS[2]: 0.5}
    result, _, _ = build(tmp_path, MODEL, "prune-magnitude",
                         {"sparsity": 0.0, "layer_sparsity": chosen, "fine_tune": False})
    assert result.info["allocation"] == "per-layer"
    got = {n: f["sparsity"] for n, f in result.info["layers"].items()}
    assert got == pytest.approx(chosen, abs=0.01)


def test_low_rank_energy_per_layer(tmp_path):
    result, _, _ = build(tmp_path, MODEL, "low-rank",
                         {"energy": 1.0, "method": "svd", "only_if_smaller": False, "fine_tune": False,
                          "layer_energy": {LAYERS[0]: 0.3}})
    layers = result.info["layers"]
    assert layers[LAYERS[0]]["rank"] < layers[LAYERS[0]]["full_rank"]
    assert layers[LAYERS[1]]["rank"] == layers[LAYERS[1]]["full_rank"]


def test_mixed_precision_given_per_layer(tmp_path):
    chosen = {LAYERS[0]: "int8", LAYERS[1]: "fp16"}
    result, _, _ = build(tmp_path, MODEL, "mixed-precision", {"layer_precision": chosen})
    assert result.info["allocation"] == "given"
    got = {n: f["precision"] for n, f in result.info["layers"].items()}
    assert got == {**chosen, LAYERS[2]: "fp32"}


@pytest.mark.parametrize("technique,key,value", [
    ("fixed-point", "layer_bits", 8), ("prune-magnitude", "layer_sparsity", 0.5),
    ("low-rank", "layer_energy", 0.5), ("mixed-precision", "layer_precision", "int8")])
def test_unknown_layer_is_refused_with_the_known_ones(tmp_path, technique, key, value):
    with pytest.raises(ConfigError) as err:
        build(tmp_path, MODEL, technique, {key: {"/nope/Gemm": value}})
    assert f"params.{key}./nope/Gemm" in str(err.value) and LAYERS[0] in str(err.value)


def test_per_layer_value_out_of_range_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="layer_bits"):
        build(tmp_path, MODEL, "fixed-point", {"layer_bits": {LAYERS[0]: 24}})
