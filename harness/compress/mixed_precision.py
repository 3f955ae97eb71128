"""Mixed precision: each layer in fp32, fp16 or int8, chosen by a sensitivity scan under a size budget.

The scan measures, on calibration-side data, the top-1 lost when only one layer is
lowered to fp16 or to int8. The choice then minimises the summed loss (losses taken as
additive) subject to the weights fitting in ``budget`` x their fp32 size, the more precise
choice winning a tie; exhaustively for up to 10 layers, greedily beyond.

In ONNX: an fp16 layer stores its weight in float16 with a Cast back to float (storage
halves, the arithmetic stays fp32, so any CPU runs it); an int8 layer stores its weight
int8 with one symmetric scale per output channel (DequantizeLinear) and quantizes its
input activations (QuantizeLinear/DequantizeLinear, min-max calibrated), which onnxruntime
fuses into integer kernels.
"""
from __future__ import annotations

import itertools

import numpy as np
from onnx import helper, numpy_helper

from ..errors import ConfigError
from . import onnx_graph as g
from ..registry import Option
from . import technique
from .base import BuildContext, BuildResult

NEEDS_INPUTS = "representative inputs (a dataset, a calibration: .npz, or one float input to generate them for)"
from .sensitivity import scan

PRECISIONS = ("fp32", "fp16", "int8")
EXHAUSTIVE_LAYERS = 10


def weight_bytes(model, layer, precision: str) -> int:
    w = g.get_weight(model, layer)
    if precision == "fp32":
        return 4 * w.size
    if precision == "fp16":
        return 2 * w.size
    return w.size + 5 * w.shape[0]            # int8 values + a float scale and zero point per channel


def _lower_fp16(model, layer):
    w = g.get_array(model, layer.weight)
    half = g.unique_name(model, f"{layer.weight}_fp16")
    model.graph.initializer.append(numpy_helper.from_array(w.astype(np.float16), half))
    cast = helper.make_node("Cast", [half], [half + "_float"], name=half + "_cast", to=1)
    live = g.set_input(model, layer.node, 1, cast.output[0])
    g.replace_node(model, live, [cast, live])


def _lower_int8(model, layer, activation_range):
    stored = g.get_array(model, layer.weight)
    axis = 1 if layer.transposed else 0          # the output-channel axis as stored
    moved = np.moveaxis(stored, axis, 0)
    scale = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    shape = [-1] + [1] * (moved.ndim - 1)
    q = np.moveaxis(np.clip(np.round(moved / scale.reshape(shape)), -127, 127), 0, axis).astype(np.int8)
    stem = g.unique_name(model, f"{layer.weight}_int8")
    model.graph.initializer.extend([numpy_helper.from_array(q, stem),
                                    numpy_helper.from_array(scale, stem + "_scale"),
                                    numpy_helper.from_array(np.zeros(len(scale), np.int8), stem + "_zero")])
    deq = helper.make_node("DequantizeLinear", [stem, stem + "_scale", stem + "_zero"], [stem + "_dq"],
                           name=stem + "_dq", axis=axis)
    lo, hi = min(activation_range[0], 0.0), max(activation_range[1], 0.0)   # zero must be exact
    a_scale = np.float32(max(hi - lo, 1e-8) / 255.0)
    a_zero = np.int8(np.clip(np.round(-128 - lo / a_scale), -128, 127))
    act = g.unique_name(model, f"{layer.name}_input_int8")
    g.set_array(model, act + "_scale", np.array(a_scale, dtype=np.float32))
    g.set_array(model, act + "_zero", np.array(a_zero, dtype=np.int8))
    q_in = helper.make_node("QuantizeLinear", [layer.node.input[0], act + "_scale", act + "_zero"],
                            [act + "_q"], name=act + "_q")
    dq_in = helper.make_node("DequantizeLinear", [act + "_q", act + "_scale", act + "_zero"],
                             [act + "_dq"], name=act + "_dq")
    g.set_input(model, layer.node, 1, deq.output[0])
    live = g.set_input(model, layer.node, 0, dq_in.output[0])
    g.replace_node(model, live, [q_in, dq_in, deq, live])


def lower(model, layer, precision, ranges):
    if precision == "fp16":
        _lower_fp16(model, layer)
    elif precision == "int8":
        _lower_int8(model, layer, ranges[layer.node.input[0]])


def choose(sizes: dict, drops: dict, budget_bytes: float) -> dict:
    """Precision per layer with the least summed drop whose weights fit ``budget_bytes``.

    sizes: {layer: {precision: bytes}}; drops: {layer: {precision: top-1 drop}}.
    """
    names = list(sizes)

    def cost(assign):
        return (sum(max(drops[n][p], 0.0) for n, p in zip(names, assign)),
                sum(sizes[n][p] for n, p in zip(names, assign)))

    if len(names) <= EXHAUSTIVE_LAYERS:
        best = None
        for assign in itertools.product(PRECISIONS, repeat=len(names)):
            drop, size = cost(assign)
            # equal measured loss: the larger (more precise) choice wins, the budget is a cap
            # and a scan on a few hundred samples cannot see small losses
            if size <= budget_bytes and (best is None or (drop, -size) < best[0]):
                best = ((drop, -size), assign)
        return dict(zip(names, best[1])) if best else None
    chosen = {n: "fp32" for n in names}
    while sum(sizes[n][chosen[n]] for n in names) > budget_bytes:
        options = []
        for n in names:
            i = PRECISIONS.index(chosen[n])
            if i + 1 < len(PRECISIONS):
                p = PRECISIONS[i + 1]
                saved = sizes[n][chosen[n]] - sizes[n][p]
                options.append(((max(drops[n][p], 0) - max(drops[n][chosen[n]], 0)) / max(saved, 1), n, p))
        if not options:
            return None
        _, n, p = min(options)
        chosen[n] = p
    return chosen


@technique("mixed-precision", options={
               "budget": Option(float, 0.5, minimum=0.01, maximum=1.0, help="size budget as a share of the fp32 model"),
               "samples": Option(int, 200, minimum=1, help="calibration samples for the sensitivity scan"),
               "layer_precision": Option(dict, None, help="{layer: fp32|fp16|int8} chosen per layer"),
           },
           description="Per-layer fp32/fp16/int8 from a sensitivity scan under a size budget")
def build_mixed_precision(ctx: BuildContext) -> BuildResult:
    budget = ctx.param("budget")
    samples = ctx.param("samples")
    if ctx.calibration is None:
        raise ConfigError(ctx.source, "technique", NEEDS_INPUTS,
                          "mixed-precision", "int8 activation ranges need representative inputs")
    model = g.load(ctx.base)
    layers = g.require_layers(model, "mixed-precision")
    values = g.tensor_values(model, sorted({l.node.input[0] for l in layers}), ctx.calibration[:samples])
    ranges = {n: (float(v.min()), float(v.max())) for n, v in values.items()}
    sizes = {l.name: {p: weight_bytes(model, l, p) for p in PRECISIONS} for l in layers}
    dense = sum(s["fp32"] for s in sizes.values())
    # precision per layer given (e.g. by a search): no scan, no budget; other layers stay fp32
    given = ctx.layer_param("layer_precision", sizes, str, choices=PRECISIONS)
    if given:
        drops = {n: {p: None for p in PRECISIONS} for n in sizes}     # not scanned
        allocation, chosen = "given", {n: given.get(n, "fp32") for n in sizes}
    else:
        result = scan(ctx, model, layers, ("fp16", "int8"), lambda m, l, p: lower(m, l, p, ranges))
        if result is None:      # no scan: every lowering counts the same; the size decides
            drops, allocation = {n: {"fp32": 0.0, "fp16": 0.0, "int8": 1.0} for n in sizes}, "size-only"
        else:
            drops = {n: {"fp32": 0.0, **d} for n, d in result[1].items()}
            allocation = "sensitivity"
        chosen = choose(sizes, drops, budget * dense)
    if chosen is None:
        smallest = sum(s["int8"] for s in sizes.values()) / dense
        raise ConfigError(ctx.source, "params.budget", f"a budget the all-int8 weights fit (>= {smallest:.3f})",
                          budget)
    for weight in [l.weight for l in layers]:
        layer = next(l for l in g.weight_layers(model) if l.weight == weight)
        lower(model, layer, chosen[layer.name], ranges)
    del model.graph.value_info[:]
    g.save(model, ctx.out)
    weights = sum(sizes[n][p] for n, p in chosen.items())
    others = 4 * sum(g.get_array(model, t.name).size for t in g.load(ctx.base).graph.initializer
                     if t.name not in {l.weight for l in layers} and t.data_type == 1)
    facts = {n: {"precision": chosen[n], "bytes": sizes[n][chosen[n]],
                 **{f"drop_{p}": None if drops[n][p] is None else round(drops[n][p], 4) for p in ("fp16", "int8")}}
             for n in chosen}
    info = {"budget": budget, "weight_bytes": weights, "weight_ratio": round(weights / dense, 4),
            "allocation": allocation, "layers": facts, "fine_tuned": False, "post_training": True}
    return BuildResult(ctx.out, info, storage_bytes=weights + others)
