"""Structured pruning: whole filters / neurons removed, so the tensors and the graph shrink.

The output channels of a Conv (filters) or the output features of a Gemm/MatMul (neurons)
with the smallest L1 norm are removed (Li et al. 2017, "Pruning Filters for Efficient
ConvNets"), and with them the matching input channels of the next layer. Between the two
layers only channel-wise operators may sit (activations, BatchNormalization, pooling,
Dropout) and one Flatten/Reshape from a conv to a fully connected layer; BatchNormalization
parameters are sliced too. A layer whose output branches, or feeds the graph output, is
left alone (the classifier keeps its classes). The result is a dense, smaller ONNX model:
fewer parameters and fewer MACs on any runtime, not only sparse.
"""
from __future__ import annotations

import numpy as np
import onnx

from ..errors import ModelError
from . import onnx_graph as g
from ..registry import Option
from . import technique
from .base import BuildContext, BuildResult
from .finetune import fine_tune

CHANNELWISE = {"Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Elu", "Selu", "HardSigmoid",
               "HardSwish", "Softplus", "Gelu", "BatchNormalization", "MaxPool", "AveragePool",
               "GlobalAveragePool", "GlobalMaxPool", "Dropout", "Identity"}


def _plan(model, layer, layers_by_node, shapes):
    """The next weight layer fed by ``layer``'s channels, through channel-wise ops only.

    A depthwise Conv (one filter per channel) is channel-wise too: its filters go with the
    channels. Returns (consumer layer, [BatchNormalization or depthwise layers], flatten block
    size, reshape node) or None.
    """
    if layer.kind == "conv" and g.attr(layer.node, "group", 1) != 1:
        return None
    tensor = layer.bias_node.output[0] if layer.bias_node is not None else layer.node.output[0]
    outputs = {o.name for o in model.graph.output}
    norms, block, reshape = [], 1, None
    while True:
        users = g.consumers(model, tensor)
        if tensor in outputs or len(users) != 1:
            return None
        node = users[0]
        if id(node) in layers_by_node and node.input[0] == tensor:
            nxt = layers_by_node[id(node)]
            if nxt.kind == "conv" and block == 1 and _depthwise(model, nxt):
                norms.append(nxt)
                tensor = nxt.node.output[0]
                continue
            if nxt.kind == "conv" and (layer.kind != "conv" or block != 1 or g.attr(nxt.node, "group", 1) != 1):
                return None
            if nxt.kind == "fc" and layer.kind == "conv" and reshape is None:
                return None      # a conv's 4-D output cannot feed a Gemm without a flatten
            return nxt, norms, block, reshape
        if node.op_type in CHANNELWISE and node.input[0] == tensor:
            if node.op_type == "PRelu":
                return None      # its slope may be per channel; not handled
            if node.op_type == "BatchNormalization":
                norms.append(node)
            tensor = node.output[0]
            continue
        if node.op_type in ("Flatten", "Reshape") and layer.kind == "conv" and reshape is None:
            if node.op_type == "Flatten" and g.attr(node, "axis", 1) != 1:
                return None
            shape = shapes.get(tensor)
            out = shapes.get(node.output[0])
            if shape is None or out is None or len(out) != 2 or len(shape) < 2:
                return None
            block = int(np.prod(shape[2:]))
            reshape = node
            tensor = node.output[0]
            continue
        return None


def _depthwise(model, layer) -> bool:
    w = g.get_array(model, layer.weight)
    return w.shape[1] == 1 and g.attr(layer.node, "group", 1) == w.shape[0] > 1


def channels_to_keep(w: np.ndarray, ratio: float) -> np.ndarray:
    """Indices of the output channels kept: the largest L1 norms, in their original order."""
    n = w.shape[0]
    remove = min(int(round(ratio * n)), n - 1)
    norms = np.abs(w.reshape(n, -1)).sum(axis=1)
    return np.sort(np.argsort(-norms, kind="stable")[:n - remove])


def prune_channels(model, ratio: float) -> dict:
    """Remove ``ratio`` of the output channels of every prunable layer, in place."""
    layers = g.weight_layers(model)
    by_node = {id(l.node): l for l in layers}
    shapes = g.static_shapes(model)
    inits = g.initializers(model)
    plans = [(l, _plan(model, l, by_node, shapes)) for l in layers]
    facts = {}
    for layer, plan in plans:
        if plan is None:
            continue
        nxt, norms, block, reshape = plan
        w = g.get_weight(model, layer)
        keep = channels_to_keep(w, ratio)
        facts[layer.name] = {"kind": layer.kind, "channels": int(w.shape[0]), "kept": int(len(keep))}
        if len(keep) == w.shape[0]:
            continue
        g.set_weight(model, layer, w[keep])
        if layer.bias is not None:
            g.set_array(model, layer.bias, g.get_array(model, layer.bias)[keep])
        for between in norms:
            if isinstance(between, g.Layer):      # depthwise conv: its filters and group shrink
                g.set_array(model, between.weight, g.get_array(model, between.weight)[keep])
                if between.bias is not None:
                    g.set_array(model, between.bias, g.get_array(model, between.bias)[keep])
                for a in between.node.attribute:
                    if a.name == "group":
                        a.i = len(keep)
                continue
            for name in between.input[1:5]:       # BatchNormalization scale, bias, mean, var
                if name in inits:
                    g.set_array(model, name, g.get_array(model, name)[keep])
        columns = (keep[:, None] * block + np.arange(block)[None, :]).ravel()
        v = g.get_weight(model, nxt)
        g.set_weight(model, nxt, v[:, columns])
        if reshape is not None and reshape.op_type == "Reshape" and reshape.input[1] in inits:
            target = g.get_array(model, reshape.input[1]).copy()
            target[target == w.shape[0] * block] = len(columns)
            g.set_array(model, reshape.input[1], target)
    del model.graph.value_info[:]        # intermediate shapes changed; the checker re-infers them
    return facts


@technique("prune-structured", options={
               "ratio": Option(float, 0.5, minimum=0.0, maximum=0.95,
                               help="share of filters/neurons removed per layer"),
               "fine_tune": Option(bool, True, help="retrain after pruning when the manifest has a training hook"),
           },
           description="Filter/neuron pruning by L1 norm that shrinks tensors and the graph")
def build_prune_structured(ctx: BuildContext) -> BuildResult:
    ratio = ctx.param("ratio")
    tune = ctx.param("fine_tune")
    model = g.load(ctx.base)
    g.require_layers(model, "prune-structured")
    before = g.count_params(model)["params"]
    facts = prune_channels(model, ratio)
    if not any(f["kept"] < f["channels"] for f in facts.values()) and ratio > 0:
        raise ModelError(f"{ctx.source}: prune-structured: no layer's channels can be removed "
                         f"({len(facts)} layers feed another weight layer through channel-wise operators only"
                         f"{'' if facts else '; none does'}); nothing to change")

    def project(weights):        # the shapes are the constraint; nothing to re-apply
        return {}
    model, tuning = fine_tune(ctx, model, project, enabled=tune and ratio > 0)
    g.save(model, ctx.out)
    after = g.count_params(onnx.load(str(ctx.out)))["params"]
    info = {"ratio": ratio, "criterion": "l1", "layers": facts,
            "params_before": before, "params_after": after, **tuning}
    return BuildResult(ctx.out, info)
