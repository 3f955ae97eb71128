"""Edge cases every technique meets in models nobody here made (Hypothesis draws the sizes).

Shared initializers, NaN / infinite parameters, k-means centroids at exactly zero, models
with no Conv/Gemm/MatMul, 1-D convolutions, weights held in Constant nodes.
"""

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from compress_fixtures import build
from onnx_models import mlp, model_of
from harness.compress import normalize
from harness.compress import onnx_graph as g
from harness.compress.deep_compression import cluster_layer
from harness.errors import ConfigError, ModelError

PER_LAYER = ["prune-magnitude", "prune-structured", "low-rank", "ternary", "deep-compression",
             "fixed-point", "mixed-precision"]
FAST = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _model(nodes, inits, in_shape, out_shape, opset=17):
    return model_of(nodes, [("input", in_shape)], [("out", out_shape)], inits, opset=opset)


def shared_weight_model(width, hidden, seed, share="weight"):
    """Two Gemms that read one weight (or one bias): a tied layer, as exporters de-duplicate."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(0, 1, (width, width)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(0, 1, width).astype(np.float32), "b")
    w2 = numpy_helper.from_array(rng.normal(0, 1, (width, width)).astype(np.float32), "w2")
    second = ["h", "w", "b"] if share == "weight" else ["h", "w2", "b"]
    nodes = [helper.make_node("Gemm", ["input", "w", "b"], ["h"], name="first", transB=1),
             helper.make_node("Gemm", second, ["out"], name="second", transB=1)]
    return _model(nodes, [w, b, w2], [1, width], [1, width])


@FAST
@given(width=st.integers(4, 24), seed=st.integers(0, 1000), share=st.sampled_from(["weight", "bias"]),
       technique=st.sampled_from(PER_LAYER))
def test_a_shared_initializer_is_refused_naming_its_readers(tmp_path, width, seed, share, technique):
    # mutation checked: weight_layers without refuse_unsupported -> prune-structured IndexError,
    # low-rank silently changes the other Gemm's bias, pruning reports a sparsity it did not reach
    model = shared_weight_model(width, width, seed, share)
    with pytest.raises(ModelError, match=r"shared by several nodes .*(w|b) read by first, second"):
        build(tmp_path, model, technique, {}, evaluate=False)


@FAST
@given(width=st.integers(4, 24), seed=st.integers(0, 1000), technique=st.sampled_from(["fp16", "int8-dynamic"]))
def test_whole_graph_converters_convert_a_shared_weight_once(tmp_path, width, seed, technique):
    model = shared_weight_model(width, width, seed)
    result, base, x = build(tmp_path, model, technique, {}, evaluate=False)
    out = g.load(result.path)
    # both layers still read one tensor (converted once), and the outputs still agree
    weights = {n.input[1] for n in out.graph.node if n.op_type in ("Gemm", "MatMul", "MatMulInteger")}
    assert any(len(nodes) == 2 for name, nodes in normalize.shared_weights(out).items() if name in weights) \
        or technique == "int8-dynamic"
    ref, got = g.run(model, x), g.run(out, x)
    assert np.allclose(ref, got, rtol=0.1, atol=0.1 * np.abs(ref).max())


@FAST
@given(technique=st.sampled_from([t for t in PER_LAYER if t != "fixed-point"]), value=st.sampled_from([float("nan"), float("inf"), float("-inf")]))
def test_nan_and_infinite_params_are_refused(tmp_path, technique, value):
    # mutation checked: BuildContext.param without the isfinite check -> ternary threshold NaN
    # builds an all-zero model reported as compressed
    key = {"prune-magnitude": "sparsity", "prune-structured": "ratio", "low-rank": "energy",
           "ternary": "threshold", "deep-compression": "sparsity", "mixed-precision": "budget"}[technique]
    # NaN passes every range comparison, so only the finiteness check stops it
    expected = "a finite number" if value != value else "(a finite number|a number in)"
    with pytest.raises(ConfigError, match=rf"params\.{key}: expected {expected}"):
        build(tmp_path, mlp(), technique, {key: value}, evaluate=False)


@FAST
@given(a=st.floats(0.01, 0.2), spacing=st.floats(1.0, 10.0), bits=st.integers(1, 3), seed=st.integers(0, 99))
def test_a_zero_centroid_never_merges_into_the_pruned_zeros(a, spacing, bits, seed):
    # {-a, +a} far below the other weights form one cluster whose mean is exactly 0.
    # mutation checked: without the zero-centroid replacement, count_nonzero drops by 2
    k = 1 << bits
    values = np.array([-a, a] + [spacing * (i + 1) for i in range(k - 1)], dtype=np.float32)
    w = np.random.default_rng(seed).permutation(np.concatenate([values, np.zeros(5, np.float32)]))
    shared, codebook, labels = cluster_layer(w.reshape(1, -1), bits, iterations=20)
    assert np.count_nonzero(shared) == np.count_nonzero(w)
    assert not np.any(codebook == 0)


def test_deep_compression_with_a_zero_centroid_builds(tmp_path):
    w = numpy_helper.from_array(np.tile(np.array([-0.5, 0.5, 3.0, 0.0], np.float32), (4, 4)), "w")
    model = _model([helper.make_node("Gemm", ["input", "w"], ["out"], name="fc", transB=1)], [w], [1, 16], [1, 4])
    result, base, x = build(tmp_path, model, "deep-compression", {"sparsity": 0.0, "fc_bits": 1}, evaluate=False)
    out = g.get_array(g.load(result.path), "w")
    assert np.count_nonzero(out) == np.count_nonzero(numpy_helper.to_array(w))


@FAST
@given(width=st.integers(2, 32), technique=st.sampled_from(PER_LAYER))
def test_a_model_without_weight_layers_is_refused_by_name(tmp_path, width, technique):
    # mutation checked: mixed-precision without require_layers -> ZeroDivisionError
    scale = numpy_helper.from_array(np.full(width, 2.0, np.float32), "scale")
    model = _model([helper.make_node("Mul", ["input", "scale"], ["m"], name="mul"),
                    helper.make_node("Relu", ["m"], ["out"], name="relu")], [scale], [1, width], [1, width])
    with pytest.raises(ModelError, match="no Conv/Gemm/MatMul weight of at least 1 elements outside subgraphs"):
        build(tmp_path, model, technique, {}, evaluate=False)


def conv1d_model(channels, length, kernel, seed):
    rng = np.random.default_rng(seed)
    w0 = numpy_helper.from_array(rng.normal(0, 0.5, (channels, 2, kernel)).astype(np.float32), "c0.w")
    b0 = numpy_helper.from_array(rng.normal(0, 0.1, channels).astype(np.float32), "c0.b")
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (4, channels, kernel)).astype(np.float32), "c1.w")
    nodes = [helper.make_node("Conv", ["input", "c0.w", "c0.b"], ["c0"], name="conv0", pads=[kernel // 2] * 2),
             helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
             helper.make_node("Conv", ["r0", "c1.w"], ["out"], name="conv1", pads=[kernel // 2] * 2)]
    out_len = length + 2 * (kernel // 2) - kernel + 1
    out_len = out_len + 2 * (kernel // 2) - kernel + 1
    return _model(nodes, [w0, b0, w1], [1, 2, length], [1, 4, out_len])


@FAST
@given(channels=st.integers(8, 24), length=st.integers(8, 32), kernel=st.sampled_from([1, 3, 5]),
       seed=st.integers(0, 100), technique=st.sampled_from(PER_LAYER))
def test_conv1d_builds_and_runs(tmp_path, channels, length, kernel, seed, technique):
    # mutation checked: low-rank's old 4-D unpack (d, c, kh, kw = w_shape) -> "not enough values to unpack"
    model = conv1d_model(channels, length, kernel, seed)
    params = {"low-rank": {"method": "svd", "rank": 2, "only_if_smaller": False},
              "prune-structured": {"ratio": 0.5}}.get(technique, {})
    try:
        result, base, x = build(tmp_path, model, technique, params, evaluate=False)
    except ModelError as exc:
        pytest.fail(f"{technique} on a Conv1d: {exc}")
    out = g.load(result.path)
    onnx.checker.check_model(out, full_check=True)
    sess = g.session(out)
    y = sess.run(None, {"input": x[:1].astype(np.float32)})[0]
    assert y.shape == tuple(d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim)


def test_constant_node_weights_become_initializers_and_get_pruned(tmp_path):
    # mutation checked: normalize() without constants_to_initializers -> "no Conv/Gemm/MatMul weight"
    model = mlp()
    for t in list(model.graph.initializer):
        model.graph.node.insert(0, helper.make_node("Constant", [], [t.name], name=f"const_{t.name}", value=t))
    del model.graph.initializer[:]
    assert g.count_params(model)["params"] == g.count_params(mlp())["params"]
    form = normalize.normalize(model)
    assert form.constants_moved == 6 and not form.shared and not form.subgraph_weights
    result, _, _ = build(tmp_path, model, "prune-magnitude", {"sparsity": 0.5}, evaluate=False)
    assert result.info["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_subgraph_weights_are_refused_naming_the_node(tmp_path):
    inner = mlp()
    then_graph = helper.make_graph(list(inner.graph.node), "then", [],
                                   [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])],
                                   list(inner.graph.initializer))
    else_graph = helper.make_graph([helper.make_node("Identity", ["zeros"], ["p2"], name="id")], "else", [],
                                   [helper.make_tensor_value_info("p2", TensorProto.FLOAT, [1, 10])])
    cond = numpy_helper.from_array(np.array(True), "cond")
    zeros = numpy_helper.from_array(np.zeros((1, 10), np.float32), "zeros")
    node = helper.make_node("If", ["cond"], ["out"], name="branch", then_branch=then_graph, else_branch=else_graph)
    model = _model([node], [cond, zeros], [1, 64], [1, 10])
    for technique in ("prune-magnitude", "low-rank"):
        with pytest.raises(ModelError, match=r"inside control-flow subgraphs .*branch holds gemm0"):
            build(tmp_path, model, technique, {}, evaluate=False)
