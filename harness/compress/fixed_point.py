"""Dynamic fixed-point quantization (Qiu et al. 2016, "Going Deeper with Embedded FPGA Platforms").

Every layer has its own fractional length fl: a value v is stored as the integer
round(v x 2**fl), saturated to ``bits``, i.e. a power-of-two scale 2**-fl. For the weights of
each layer and for the activations entering and leaving each layer (``outputs``: the
layer's result before its activation function, so onnxruntime can fuse DequantizeLinear ->
Conv/Gemm -> QuantizeLinear into one integer kernel), fl is the one that minimises the
squared error on that layer's weights / on its calibration-side activations (Qiu et al.
choose fl per layer to minimise the error the same way). Expressed in ONNX as QDQ:
integer weights + DequantizeLinear, and QuantizeLinear/DequantizeLinear on activations,
every scale a power of two; a Clip narrows the range when ``bits`` is below the integer
type (int8 up to 8 bits, int16 up to 16). 32 bits leaves that side in float (identity).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ConfigError
from . import onnx_graph as g
from ..registry import Option
from . import technique
from .base import BuildContext, BuildResult

NEEDS_INPUTS = "representative inputs (a dataset, a calibration: .npz, or one float input to generate them for)"

FL_RANGE = range(-16, 33)


def quantize(v: np.ndarray, bits: int, fl: int) -> np.ndarray:
    """Integers of ``v`` at fractional length ``fl``, saturated to signed ``bits``."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.round(v.astype(np.float64) * 2.0 ** fl), lo, hi)


def best_fl(v: np.ndarray, bits: int) -> tuple[int, float]:
    """The fractional length with the least squared error; returns (fl, mean squared error)."""
    v = np.asarray(v, dtype=np.float64).ravel()
    best = None
    for fl in reversed(FL_RANGE):    # on a tie the finer step wins
        err = float(np.mean((quantize(v, bits, fl) * 2.0 ** -fl - v) ** 2)) if v.size else 0.0
        if best is None or err < best[1]:
            best = (fl, err)
    return best


def _bits(ctx, key):
    bits = ctx.param(key)
    if 16 < bits < 32:
        raise ConfigError(ctx.source, f"params.{key}", "2..16 bits, or 32 for float", bits)
    return bits


def _int_type(bits):
    return (np.int8, onnx.TensorProto.INT8) if bits <= 8 else (np.int16, onnx.TensorProto.INT16)


def _constants(model, stem, fl, bits):
    scale = g.unique_name(model, f"{stem}_scale")
    zero = g.unique_name(model, f"{stem}_zero")
    g.set_array(model, scale, np.array(2.0 ** -fl, dtype=np.float32))
    g.set_array(model, zero, np.array(0, dtype=_int_type(bits)[0]))
    return scale, zero


def quantize_weight(model, layer, bits: int) -> dict:
    """Integer initializer + DequantizeLinear in front of the layer's weight input."""
    w = g.get_array(model, layer.weight)
    fl, err = best_fl(w, bits)
    q_name = g.unique_name(model, f"{layer.weight}_q")
    model.graph.initializer.append(numpy_helper.from_array(quantize(w, bits, fl).astype(_int_type(bits)[0]), q_name))
    scale, zero = _constants(model, layer.weight, fl, bits)
    deq = helper.make_node("DequantizeLinear", [q_name, scale, zero], [layer.weight + "_dq"],
                           name=g.unique_name(model, f"{layer.name}_weight_dq"))
    live = g.set_input(model, layer.node, 1, deq.output[0])
    g.replace_node(model, live, [deq, live])
    return {"fl": fl, "mse": err, "bits": bits, "weights": int(w.size), "initializer": q_name}


def quantize_activation(model, tensor, values, bits: int) -> dict:
    """QuantizeLinear -> DequantizeLinear on ``tensor`` for all its readers (with a Clip when
    bits < the int type)."""
    fl, err = best_fl(values, bits)
    scale, zero = _constants(model, tensor.replace("/", "_"), fl, bits)
    stem = g.unique_name(model, f"{tensor}_fxp")
    nodes, src = [], tensor
    container = 8 if bits <= 8 else 16
    if bits < container:
        lo = g.unique_name(model, stem + "_min")
        hi = g.unique_name(model, stem + "_max")
        g.set_array(model, lo, np.array(-(1 << (bits - 1)) * 2.0 ** -fl, dtype=np.float32))
        g.set_array(model, hi, np.array(((1 << (bits - 1)) - 1) * 2.0 ** -fl, dtype=np.float32))
        nodes.append(helper.make_node("Clip", [src, lo, hi], [stem + "_clipped"], name=stem + "_clip"))
        src = stem + "_clipped"
    nodes.append(helper.make_node("QuantizeLinear", [src, scale, zero], [stem + "_q"], name=stem + "_q"))
    nodes.append(helper.make_node("DequantizeLinear", [stem + "_q", scale, zero], [stem + "_dq"], name=stem + "_dq"))
    readers = g.consumers(model, tensor)
    for node in readers:
        for i, name in enumerate(node.input):
            if name == tensor:
                node.input[i] = stem + "_dq"
    first = min(readers, key=lambda n: g.node_index(model, n))
    g.replace_node(model, first, nodes + [first])
    return {"fl": fl, "mse": err, "bits": bits}


def activation_tensors(model, outputs: bool) -> list:
    """The data entering each weight layer and, with ``outputs``, the data each produces
    (before its activation function), each tensor once; graph outputs stay float."""
    tensors = []
    for layer in g.weight_layers(model):
        names = [layer.node.input[0]]
        if outputs:
            names.append((layer.bias_node or layer.node).output[0])
        for name in names:
            if name not in tensors:
                tensors.append(name)
    graph_outputs = {o.name for o in model.graph.output}
    return [t for t in tensors if t not in graph_outputs]


@technique("fixed-point", options={
               "weight_bits": Option(int, 8, minimum=2, maximum=32, help="weight bits: 2..16, or 32 for float"),
               "activation_bits": Option(int, 8, minimum=2, maximum=32,
                                         help="activation bits: 2..16, or 32 for float"),
               "outputs": Option(bool, True, help="quantize the model's outputs too"),
               "samples": Option(int, 200, minimum=1, help="calibration samples for activation ranges"),
               "layer_bits": Option(dict, None, help="{layer: weight bits} chosen per layer (e.g. by a search)"),
           },
           description="Dynamic fixed point: per-layer power-of-two scales for weights and activations, QDQ")
def build_fixed_point(ctx: BuildContext) -> BuildResult:
    wbits = _bits(ctx, "weight_bits")
    abits = _bits(ctx, "activation_bits")
    samples = ctx.param("samples")
    outputs = ctx.param("outputs")
    model = g.load(ctx.base)
    g.require_layers(model, "fixed-point")
    # weight bits per layer (mixed fixed point, e.g. from a search); other layers: weight_bits
    layer_bits = {l.name: wbits for l in g.weight_layers(model)}
    for name, bits in ctx.layer_param("layer_bits", layer_bits, int, minimum=2, maximum=32).items():
        if 16 < bits < 32:
            raise ConfigError(ctx.source, f"params.layer_bits.{name}", "2..16 bits, or 32 for float", bits)
        layer_bits[name] = bits
    if abits < 32 and ctx.calibration is None:
        raise ConfigError(ctx.source, "technique", NEEDS_INPUTS, "fixed-point",
                          "activation fractional lengths need representative inputs")
    if any(8 < b <= 16 for b in (*layer_bits.values(), abits)):
        from onnx import version_converter
        model = version_converter.convert_version(model, 21)   # int16 QDQ needs opset 21
    facts = {"weights": {}, "activations": {}}
    if abits < 32:
        tensors = activation_tensors(model, outputs)
        values = g.tensor_values(model, tensors, ctx.calibration[:samples])
        for tensor in tensors:
            facts["activations"][tensor] = quantize_activation(model, tensor, values[tensor], abits)
    stored_bits = {}    # integer initializer -> its bits
    for weight in [l.weight for l in g.weight_layers(model)]:
        layer = next(l for l in g.weight_layers(model) if l.weight == weight)
        if layer_bits[layer.name] < 32:
            fact = quantize_weight(model, layer, layer_bits[layer.name])
            facts["weights"][layer.name] = fact
            stored_bits[fact["initializer"]] = fact["bits"]
    del model.graph.value_info[:]
    g.save(model, ctx.out)
    bits = 0
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for t in model.graph.initializer:
        n = int(np.prod(t.dims)) if t.dims else 1
        if t.name in quantized:
            bits += stored_bits.get(t.name, wbits) * n
        elif t.data_type in (1, 10, 11) and t.name not in {n_.input[1] for n_ in model.graph.node
                                                           if n_.op_type in ("QuantizeLinear", "DequantizeLinear", "Clip")}:
            bits += 32 * n
    info = {"weight_bits": wbits, "activation_bits": abits, "outputs": outputs, "scales": "power of two", **facts,
            "fine_tuned": False, "post_training": True}
    return BuildResult(ctx.out, info, storage_bytes=(bits + 7) // 8)
