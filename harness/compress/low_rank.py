"""Low-rank approximation by truncated SVD (after Zhang et al. 2015; Jaderberg et al. 2014).

Fully connected: W (out x in) ~ B A with A = V_r^T (r x in) and B = U_r S_r (out x r): one
Gemm/MatMul becomes two, r (in + out) weights instead of in x out.
Convolution: the d filters of a k x k conv, flattened to d x (c k k), are factored the same
way: a k x k conv with r filters (same strides/pads/dilations) then a 1 x 1 conv back to d
channels that carries the bias (Zhang et al.'s d' filters followed by a 1 x 1 convolution).

Two ways to find the factors (``method``):
  response (default with calibration data): Zhang et al.'s linear reconstruction of the
    layer's responses. Over the calibration inputs, the layer's outputs y (d-vectors, one
    per position) have covariance with eigenvectors P; keeping the top r, y ~ P P^T (y - mean)
    + mean, so the first layer has weights P_r^T W, the second P_r, and the second's bias
    absorbs (I - P_r P_r^T) times the mean response. r keeps ``energy`` of the eigenvalues.
    (Their non-linear, asymmetric refinement is not done.)
  svd: data-free truncated SVD of the weights; r keeps ``energy`` of the squared singular values.
A fixed ``rank`` overrides the energy. A layer whose factors would not be smaller than
itself is kept as it is. With a training hook the factored model is fine-tuned (as Zhang
et al. do), otherwise it is post-training.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from ..errors import ConfigError, ModelError
from . import onnx_graph as g
from ..registry import Option
from . import technique
from .base import BuildContext, BuildResult
from .finetune import fine_tune


def energy_rank(s: np.ndarray, energy: float) -> int:
    """Smallest rank whose singular values keep ``energy`` of the total squared energy."""
    total = float(np.sum(s.astype(np.float64) ** 2))
    if total == 0.0:
        return 1
    kept = np.cumsum(s.astype(np.float64) ** 2) / total
    return int(min(np.searchsorted(kept, energy - 1e-12) + 1, len(s)))


def factor(matrix: np.ndarray, energy: float, rank=None):
    """(A, B, r, kept energy) with matrix ~ B @ A, A: r x n, B: m x r."""
    u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    r = min(rank, len(s)) if rank else energy_rank(s, energy)
    kept = float(np.sum(s[:r] ** 2) / max(np.sum(s ** 2), 1e-300))
    return vt[:r].astype(np.float32), (u[:, :r] * s[:r]).astype(np.float32), r, kept


def factor_response(w: np.ndarray, responses: np.ndarray, bias, energy: float, rank=None):
    """Zhang et al.'s linear response reconstruction.

    w: (d, n) weights; responses: (samples, d) layer outputs (bias included when ``bias``).
    Returns (A r x n, B d x r, r, kept energy, the second layer's bias).
    """
    d = w.shape[0]
    z = responses.astype(np.float64) - (0.0 if bias is None else bias.astype(np.float64))
    mean = z.mean(axis=0)
    cov = np.cov(z - mean, rowvar=False, bias=True).reshape(d, d)
    eigenvalues, vectors = np.linalg.eigh(cov)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = np.clip(eigenvalues[order], 0, None), vectors[:, order]
    full = min(w.shape)
    r = min(rank, full) if rank else min(energy_rank(np.sqrt(eigenvalues), energy), full)
    kept = float(eigenvalues[:r].sum() / max(eigenvalues.sum(), 1e-300))
    p = vectors[:, :r]
    new_bias = (0.0 if bias is None else bias.astype(np.float64)) + (mean - p @ (p.T @ mean))
    return ((p.T @ w.astype(np.float64)).astype(np.float32), p.astype(np.float32), r, kept,
            new_bias.astype(np.float32))


def _set_bias(model, layer, node, second, bias):
    """Give the second node of a split the (compensated) bias."""
    if bias is None:
        return
    if layer.bias is not None:
        g.set_array(model, layer.bias, bias)
    elif node.op_type in ("Gemm", "Conv"):
        name = g.unique_name(model, f"{layer.weight}_bias")
        g.set_array(model, name, bias)
        second.input.append(name)


def _split_fc(model, layer, a, b, bias=None):
    node = layer.node
    mid = g.unique_name(model, f"{layer.name}_lowrank")
    a_name, b_name = g.unique_name(model, f"{layer.weight}_A"), g.unique_name(model, f"{layer.weight}_B")
    if node.op_type == "Gemm":
        g.set_array(model, a_name, a)                       # used with transB=1
        g.set_array(model, b_name, b)
        first = helper.make_node("Gemm", [node.input[0], a_name], [mid], name=mid + "_A", transB=1)
        second = helper.make_node("Gemm", [mid, b_name] + list(node.input[2:]), list(node.output),
                                  name=mid + "_B", transB=1)
    else:                                                   # MatMul stores (in, out)
        g.set_array(model, a_name, a.T.copy())
        g.set_array(model, b_name, b.T.copy())
        first = helper.make_node("MatMul", [node.input[0], a_name], [mid], name=mid + "_A")
        second = helper.make_node("MatMul", [mid, b_name], list(node.output), name=mid + "_B")
    _set_bias(model, layer, node, second, bias)
    g.replace_node(model, node, [first, second])


def _split_conv(model, layer, a, b, w_shape, bias=None):
    node = layer.node
    d, c, kernel = w_shape[0], w_shape[1], list(w_shape[2:])     # 1-D, 2-D or 3-D convolutions
    r = a.shape[0]
    mid = g.unique_name(model, f"{layer.name}_lowrank")
    a_name, b_name = g.unique_name(model, f"{layer.weight}_A"), g.unique_name(model, f"{layer.weight}_B")
    g.set_array(model, a_name, a.reshape([r, c] + kernel))
    g.set_array(model, b_name, b.reshape([d, r] + [1] * len(kernel)))
    spatial = [a_ for a_ in node.attribute if a_.name in ("strides", "pads", "dilations", "auto_pad",
                                                          "kernel_shape")]
    first = helper.make_node("Conv", [node.input[0], a_name], [mid], name=mid + "_kxk")
    first.attribute.extend(spatial)
    second = helper.make_node("Conv", [mid, b_name] + list(node.input[2:]), list(node.output),
                              name=mid + "_1x1", kernel_shape=[1] * len(kernel))
    _set_bias(model, layer, node, second, bias)
    g.replace_node(model, node, [first, second])


def _responses(model, layers, x):
    """Each layer's outputs over ``x`` as (samples x positions, channels)."""
    values = g.tensor_values(model, [l.node.output[0] for l in layers], x)
    out = {}
    for l in layers:
        d = g.get_weight(model, l).shape[0]
        v = values[l.node.output[0]]
        if l.kind == "conv":
            v = v.reshape(len(x), d, -1).transpose(0, 2, 1)
        out[l.weight] = v.reshape(-1, d)
    return out


@technique("low-rank", options={
               "energy": Option(float, 0.9, minimum=0.01, maximum=1.0,
                                help="share of the singular values' energy kept"),
               "rank": Option(int, None, minimum=1, help="one fixed rank for every layer (instead of energy)"),
               "method": Option(str, None, choices=("response", "svd"),
                                help="svd of the weights, or of the layer's responses to calibration data "
                                     "(default: response when there is calibration data)"),
               "conv": Option(bool, True, help="factorize convolutions"),
               "fc": Option(bool, True, help="factorize fully connected layers"),
               "only_if_smaller": Option(bool, True, help="keep a layer whose factors would be larger"),
               "samples": Option(int, 200, minimum=1, help="calibration samples for the response method"),
               "fine_tune": Option(bool, True, help="retrain after factorizing when the manifest has a training hook"),
               "layer_energy": Option(dict, None, help="{layer: energy} chosen per layer (e.g. by a search)"),
           },
           description="Truncated SVD: FC into two FCs, k x k conv into k x k (d' filters) + 1 x 1")
def build_low_rank(ctx: BuildContext) -> BuildResult:
    energy = ctx.param("energy")
    rank = ctx.param("rank")
    do_conv = ctx.param("conv")
    do_fc = ctx.param("fc")
    only_if_smaller = ctx.param("only_if_smaller")
    tune = ctx.param("fine_tune")
    samples = ctx.param("samples")
    method = _method(ctx)
    model = g.load(ctx.base)
    g.require_layers(model, "low-rank")
    # energy kept per layer (e.g. from a search); other layers: energy
    layer_energy = ctx.layer_param("layer_energy", [l.name for l in g.weight_layers(model)], float,
                                   minimum=0.01, maximum=1.0)
    responses = _responses(model, g.weight_layers(model), ctx.calibration[:samples]) if method == "response" else {}
    facts = {}
    for weight in [l.weight for l in g.weight_layers(model)]:
        # fetched again each time: splitting a layer rebuilds (copies) the node list
        layer = next(l for l in g.weight_layers(model) if l.weight == weight)
        w = g.get_weight(model, layer)
        matrix = _factorable_matrix(layer, w, do_conv, do_fc)
        if matrix is None:
            continue
        facts[layer.name] = _factorize_layer(model, layer, w.shape, matrix, method, responses,
                                             layer_energy.get(layer.name, energy), rank, only_if_smaller)
    del model.graph.value_info[:]
    factored = any(f["factorized"] for f in facts.values())
    if not factored:
        raise ModelError(f"{ctx.source}: low-rank: no layer's factors at energy {energy} are smaller than "
                         f"the layer itself ({len(facts)} layers tried); nothing to change")
    model, tuning = fine_tune(ctx, model, lambda weights: {}, enabled=tune and factored)
    g.save(model, ctx.out)
    info = {"energy": energy, "rank": rank, "method": method, "layers": facts, **tuning}
    return BuildResult(ctx.out, info)


def _method(ctx: BuildContext) -> str:
    """The params' method, else response when there is calibration data, else svd."""
    method = ctx.param("method") or ("response" if ctx.calibration is not None else "svd")
    if method == "response" and ctx.calibration is None:
        raise ConfigError(ctx.source, "params.method", "svd for a model without calibration data", method)
    return method


def _factorable_matrix(layer, w, do_conv: bool, do_fc: bool):
    """The layer's weight w as a (outputs x inputs) matrix, or None for a layer left as it is
    (its kind not asked for, a grouped convolution, a scaled Gemm)."""
    if layer.kind == "conv":
        if not do_conv or g.attr(layer.node, "group", 1) != 1:
            return None
        return w.reshape(w.shape[0], -1)
    if not do_fc or g.attr(layer.node, "alpha", 1.0) != 1.0 or g.attr(layer.node, "beta", 1.0) != 1.0:
        return None
    return w


def _factorize_layer(model, layer, w_shape, matrix, method: str, responses: dict, energy: float, rank,
                     only_if_smaller: bool) -> dict:
    """Factors the layer and splits it in two in the model, unless the factors would not be
    smaller (and only_if_smaller); returns what was done, for the build's info."""
    if method == "response":
        a, b, r, kept, bias = _response_factors(model, layer, matrix, responses[layer.weight], energy, rank)
    else:
        a, b, r, kept = factor(matrix, energy, rank)
        bias = None
    before, after = matrix.size, a.size + b.size
    fact = {"kind": layer.kind, "rank": r, "full_rank": int(min(matrix.shape)),
            "energy_kept": round(kept, 5), "params_before": int(before), "params_after": int(after)}
    if only_if_smaller and after >= before:
        fact.update(factorized=False, params_after=int(before))
    else:
        fact["factorized"] = True
        if layer.kind == "conv":
            _split_conv(model, layer, a, b, w_shape, bias)
        else:
            _split_fc(model, layer, a, b, bias)
    return fact


def _response_factors(model, layer, matrix, response, energy: float, rank):
    """factor_response for one layer: (a, b, rank, energy kept, the second factor's bias)."""
    # MatMul's output has no bias in it; Gemm's and Conv's does
    stored_bias = g.get_array(model, layer.bias) if layer.bias is not None else None
    in_output = stored_bias if layer.node.op_type != "MatMul" else None
    a, b, r, kept, comp = factor_response(matrix, response, in_output, energy, rank)
    bias = comp + (stored_bias if layer.node.op_type == "MatMul" and stored_bias is not None else 0)
    if layer.node.op_type == "MatMul" and layer.bias is None:
        bias = None          # nowhere to put the mean correction; the factors still hold
    return a, b, r, kept, bias
