"""Low-rank approximation by truncated SVD (after Zhang et al. 2015; Jaderberg et al. 2014).

Fully connected: W (out x in) ~ B A with A = V_r^T (r x in) and B = U_r S_r (out x r): one
Gemm/MatMul becomes two, r (in + out) weights instead of in x out.
Convolution: the d filters of a k x k conv, flattened to d x (c k k), are factored the same
way: a k x k conv with r filters (same strides/pads/dilations) then a 1 x 1 conv back to d
channels that carries the bias (Zhang et al.'s d' filters followed by a 1 x 1 convolution).

The rank of each layer is the smallest r whose singular values keep ``energy`` of the sum
of squared singular values (or a fixed ``rank``). A layer whose factors would not be
smaller than itself is kept as it is. The factors come from the weights alone (data-free
SVD), not from Zhang et al.'s response reconstruction on data; with a training hook the
factored model is fine-tuned (as Zhang et al. do), otherwise it is post-training.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from . import onnx_graph as g
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


def _split_fc(model, layer, a, b):
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
    g.replace_node(model, node, [first, second])


def _split_conv(model, layer, a, b, w_shape):
    node = layer.node
    d, c, kh, kw = w_shape
    r = a.shape[0]
    mid = g.unique_name(model, f"{layer.name}_lowrank")
    a_name, b_name = g.unique_name(model, f"{layer.weight}_A"), g.unique_name(model, f"{layer.weight}_B")
    g.set_array(model, a_name, a.reshape(r, c, kh, kw))
    g.set_array(model, b_name, b.reshape(d, r, 1, 1))
    spatial = [a_ for a_ in node.attribute if a_.name in ("strides", "pads", "dilations", "auto_pad",
                                                          "kernel_shape")]
    first = helper.make_node("Conv", [node.input[0], a_name], [mid], name=mid + "_kxk")
    first.attribute.extend(spatial)
    second = helper.make_node("Conv", [mid, b_name] + list(node.input[2:]), list(node.output),
                              name=mid + "_1x1", kernel_shape=[1, 1])
    g.replace_node(model, node, [first, second])


@technique("low-rank", params=("energy", "rank", "conv", "fc", "only_if_smaller", "fine_tune"),
           description="Truncated SVD: FC into two FCs, k x k conv into k x k (d' filters) + 1 x 1")
def build_low_rank(ctx: BuildContext) -> BuildResult:
    energy = ctx.param("energy", float, 0.9, minimum=0.01, maximum=1.0)
    rank = ctx.param("rank", int, None, minimum=1)
    do_conv = ctx.param("conv", bool, True)
    do_fc = ctx.param("fc", bool, True)
    only_if_smaller = ctx.param("only_if_smaller", bool, True)
    tune = ctx.param("fine_tune", bool, True)
    model = g.load(ctx.base)
    facts = {}
    for weight in [l.weight for l in g.weight_layers(model)]:
        # fetched again each time: splitting a layer rebuilds (copies) the node list
        layer = next(l for l in g.weight_layers(model) if l.weight == weight)
        w = g.get_weight(model, layer)
        if layer.kind == "conv":
            if not do_conv or g._attr(layer.node, "group", 1) != 1:
                continue
            matrix = w.reshape(w.shape[0], -1)
        else:
            if not do_fc or g._attr(layer.node, "alpha", 1.0) != 1.0 or g._attr(layer.node, "beta", 1.0) != 1.0:
                continue
            matrix = w
        a, b, r, kept = factor(matrix, energy, rank)
        before, after = matrix.size, a.size + b.size
        fact = {"kind": layer.kind, "rank": r, "full_rank": int(min(matrix.shape)),
                "energy_kept": round(kept, 5), "params_before": int(before), "params_after": int(after)}
        if only_if_smaller and after >= before:
            fact.update(factorized=False, params_after=int(before))
        else:
            fact["factorized"] = True
            if layer.kind == "conv":
                _split_conv(model, layer, a, b, w.shape)
            else:
                _split_fc(model, layer, a, b)
        facts[layer.name] = fact
    del model.graph.value_info[:]
    factored = any(f["factorized"] for f in facts.values())
    model, tuning = fine_tune(ctx, model, lambda weights: {}, enabled=tune and factored)
    g.save(model, ctx.out)
    info = {"energy": energy, "rank": rank, "method": "svd (data-free)", "layers": facts, **tuning}
    return BuildResult(ctx.out, info)
