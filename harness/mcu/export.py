"""A full-int8 .tflite model -> the reference firmware's model source (model.c, model.h).

Tensors, quantization parameters and constant weights come from LiteRT's Interpreter;
operator options (strides, padding, fused activations, pool sizes, softmax beta) come
from the flatbuffer through the schema module LiteRT ships. Everything TFLite's
Prepare() computes in floating point (requantization multipliers and shifts, padding,
activation ranges, the softmax exp table) is computed here the same way, so the C
engine only does integer work and its outputs match LiteRT's builtin kernels bit for bit.
An operator the engine lacks is refused with its name.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError

SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
             "MAX_POOL_2D", "RESHAPE", "SOFTMAX")
_KIND = {"CONV_2D": "ENG_CONV", "DEPTHWISE_CONV_2D": "ENG_DWCONV", "FULLY_CONNECTED": "ENG_FC",
         "AVERAGE_POOL_2D": "ENG_AVGPOOL", "MAX_POOL_2D": "ENG_MAXPOOL", "RESHAPE": "ENG_RESHAPE",
         "SOFTMAX": "ENG_SOFTMAX"}
# The requantization rounding of the kernels LiteRT's builtin resolver runs on x86: fully
# connected goes through cpu_backend_gemm -> ruy's AVX2/AVX-512 kernel (two half-up
# roundings); conv and depthwise conv use TFLite's MultiplyByQuantizedMultiplier (gemmlowp:
# the second rounding is half away from zero). Checked op by op against LiteRT on random
# inputs and over the held-out digits (tests/test_mcu_bitexact.py). {} gives TFLite's
# reference kernels' rounding everywhere (what TFLite Micro does).
GEMMLOWP, RUY = 0, 1
LITERT_X86_ROUNDING = {"FULLY_CONNECTED": RUY}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


class ExportError(ModelError):
    """The model cannot be compiled into the firmware; names the model and the reason."""


@dataclass
class Exported:
    name: str
    c_source: str
    h_source: str
    ops: list
    arena_bytes: int
    input: dict          # {"shape", "scale", "zero_point", "bytes"}
    output: dict
    const_bytes: int     # weights, biases, multipliers, shifts, softmax tables
    notes: list = field(default_factory=list)

    def write(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.c").write_text(self.c_source)
        (directory / "model.h").write_text(self.h_source)

    def summary(self) -> dict:
        return {"name": self.name, "ops": self.ops, "arena_bytes": self.arena_bytes,
                "input": self.input, "output": self.output, "const_bytes": self.const_bytes}


# ------------------------------------------------------------ TFLite's float-side arithmetic


def tflite_round(x: float) -> int:
    """std::round: half away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: (int32 significand in Q31, shift)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (f / scale in float32, as TFLite does)."""
    def quantize(f):
        return zero_point + tflite_round(float(np.float32(f) / np.float32(scale)))
    name = _ACTIVATIONS.get(activation)
    if name == "NONE":
        return -128, 127
    if name == "RELU":
        return max(-128, quantize(0.0)), 127
    if name == "RELU6":
        return max(-128, quantize(0.0)), min(127, quantize(6.0))
    if name == "RELU_N1_TO_1":
        return max(-128, quantize(-1.0)), min(127, quantize(1.0))
    raise ValueError(f"fused activation {activation}")


def padding(kind: int, stride: int, dilation: int, in_size: int, filter_size: int, out_size: int) -> int:
    """ComputePaddingWithOffset: the leading pad (the odd one goes at the end)."""
    effective = (filter_size - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2 if kind == 0 else 0  # Padding.SAME == 0, VALID == 1


def _expf():
    """libm's expf, which LiteRT's softmax table uses; float32(exp) where there is none."""
    path = ctypes.util.find_library("m")
    if path:
        fn = ctypes.CDLL(path).expf
        fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
        return lambda v: np.float32(fn(float(v)))
    return lambda v: np.float32(math.exp(float(v)))


def softmax_table(input_scale: float, beta: float) -> list:
    """PopulateSoftmaxLookupTable: table[255 - v] = expf(-input_scale * beta * v)."""
    expf = _expf()
    scale = np.float32(-np.float32(input_scale) * np.float32(beta))
    table = [np.float32(0)] * 256
    for v in range(256):
        table[255 - v] = expf(np.float32(scale * np.float32(v)))
    return table


# ------------------------------------------------------------ reading the model


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - LiteRT is the supported path
        raise ExportError(f"model export needs ai-edge-litert (pip install ai-edge-litert): {exc}") from None
    return schema


def _op_names(schema) -> dict:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


class _Model:
    """The tensors (through the Interpreter) and operators (through the flatbuffer)."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        schema = _schema()
        buf = path.read_bytes()
        try:
            model = schema.ModelT.InitFromPackedBuf(buf, 0)
        except Exception as exc:
            raise ExportError(f"{path}: not a readable .tflite flatbuffer: {exc}") from None
        if len(model.subgraphs) != 1:
            raise ExportError(f"{path}: {len(model.subgraphs)} subgraphs; the engine runs one")
        self.graph = model.subgraphs[0]
        names = _op_names(schema)
        self.op_names = []
        for op in self.graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            self.op_names.append(names.get(builtin, f"BUILTIN_{builtin}"))
        unknown = sorted({n for n in self.op_names if n not in SUPPORTED})
        if unknown:
            raise ExportError(f"{path}: operator(s) {', '.join(unknown)} not supported by the MCU engine "
                              f"(it has {', '.join(SUPPORTED)})")
        self.interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.interp.allocate_tensors()
        self.details = {d["index"]: d for d in self.interp.get_tensor_details()}

    def shape(self, i):
        return [int(s) for s in self.details[i]["shape"]]

    def quant(self, i):
        q = self.details[i]["quantization_parameters"]
        return [float(s) for s in q["scales"]], [int(z) for z in q["zero_points"]], int(q["quantized_dimension"])

    def scale_zp(self, i):
        scales, zps, _ = self.quant(i)
        if len(scales) != 1:
            raise ExportError(f"tensor {self.details[i]['name']!r}: activations must be per-tensor quantized")
        return scales[0], zps[0]

    def dtype(self, i):
        return np.dtype(self.details[i]["dtype"]).name

    def const(self, i):
        return np.array(self.interp.get_tensor(i))


# ------------------------------------------------------------ export


def export(path: Path | str, name: str | None = None, rounding: dict | None = None) -> Exported:
    """``rounding`` maps operator names to GEMMLOWP or RUY; LiteRT's x86 builtin kernels
    by default."""
    path = Path(path)
    rounding = LITERT_X86_ROUNDING if rounding is None else rounding
    if not path.is_file():
        raise ExportError(f"{path}: no such model file")
    m = _Model(path)
    name = name or path.stem
    graph_in, graph_out = _graph_io(m, path)
    consts = _Constants()
    ops = [_op_fields(m, path, k, op, op_name, rounding, consts)
           for k, (op, op_name) in enumerate(zip(m.graph.operators, m.op_names))]
    offsets, arena = _plan_arena(m, ops, graph_in, graph_out)
    for fields in ops:
        fields["in"], fields["out"] = offsets[fields["in"]], offsets[fields["out"]]
    in_scale, in_zp = m.scale_zp(graph_in)
    out_scale, out_zp = m.scale_zp(graph_out)
    inp = {"shape": m.shape(graph_in), "scale": in_scale, "zero_point": in_zp,
           "bytes": int(np.prod(m.shape(graph_in))), "offset": offsets[graph_in]}
    out = {"shape": m.shape(graph_out), "scale": out_scale, "zero_point": out_zp,
           "bytes": int(np.prod(m.shape(graph_out))), "offset": offsets[graph_out]}
    header = f"/* Generated by harness.mcu.export from {_c_string(path.name)}; do not edit. */"
    return Exported(
        name=name, c_source=_model_c(header, name, consts, ops, arena, inp, out),
        h_source=_model_h(header, arena, inp), ops=list(m.op_names), arena_bytes=arena,
        input={k: v for k, v in inp.items() if k != "offset"}, output={k: v for k, v in out.items() if k != "offset"},
        const_bytes=consts.bytes)


def _graph_io(m, path) -> tuple[int, int]:
    """The graph's one input and one output tensor, both int8 (what the firmware runs)."""
    g = m.graph
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise ExportError(f"{path}: the firmware runs single-input, single-output models")
    graph_in, graph_out = int(g.inputs[0]), int(g.outputs[0])
    for t in (graph_in, graph_out):
        if m.dtype(t) != "int8":
            raise ExportError(f"{path}: tensor {m.details[t]['name']!r} is {m.dtype(t)}; "
                              "the firmware needs a full-int8 model (int8 input and output)")
    return graph_in, graph_out


class _Constants:
    """The model's constant arrays as C definitions, and their bytes in flash."""

    _BYTES = {"int8_t": 1, "int32_t": 4, "float": 4}

    def __init__(self):
        self.definitions: list[str] = []
        self.bytes = 0

    def add(self, ctype: str, label: str, values) -> str:
        values = list(values)
        if ctype == "float":
            body = ", ".join(float(v).hex() + "f" for v in values)
        else:
            body = ", ".join(str(int(v)) for v in values)
        self.bytes += self._BYTES[ctype] * len(values)
        self.definitions.append(f"static const {ctype} {label}[{len(values)}] = {{{body}}};")
        return label


def _op_fields(m, path, k, op, op_name, rounding, consts) -> dict:
    """One operator as the engine's eng_op_t fields (tensor ids in `in`/`out`, for now)."""
    x, y = int(op.inputs[0]), int(op.outputs[0])
    if m.dtype(x) != "int8" or m.dtype(y) != "int8":
        raise ExportError(f"{path}: operator {k} ({op_name}) is {m.dtype(x)} -> {m.dtype(y)}; "
                          "the engine runs int8 operators only")
    layer = _Layer(m, path, k, op, op_name, consts)
    layer.fields.update({"kind": _KIND[op_name], "in": x, "out": y, "in_offset": -layer.in_zp,
                         "out_zp": layer.out_zp, "act_min": -128, "act_max": 127,
                         "rounding": rounding.get(op_name, GEMMLOWP)})
    if op_name in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D") and layer.ishape[0] != 1:
        raise ExportError(f"{path}: operator {k} ({op_name}) has batch {layer.ishape[0]}; the engine runs batch 1")
    _OP_STEPS[op_name](layer)
    _check_ranges(path, k, op_name, layer.fields)
    return layer.fields


class _Layer:
    """What every operator's step reads: its tensors' shapes and quantization, its options."""

    def __init__(self, m, path, k, op, op_name, consts):
        self.m, self.path, self.k, self.op, self.op_name, self.consts = m, path, k, op, op_name, consts
        x, y = int(op.inputs[0]), int(op.outputs[0])
        self.in_scale, self.in_zp = m.scale_zp(x)
        self.out_scale, self.out_zp = m.scale_zp(y)
        self.ishape, self.oshape = m.shape(x), m.shape(y)
        self.opt = op.builtinOptions
        self.fields: dict = {}

    def error(self, text: str) -> ExportError:
        return ExportError(f"{self.path}: operator {self.k} ({self.op_name}) {text}")

    def window(self, k_h: int, k_w: int, dil_h: int, dil_w: int) -> dict:
        """The NHWC geometry of a conv or pool window (padding apart: see pads())."""
        i, o, opt = self.ishape, self.oshape, self.opt
        return dict(in_h=i[1], in_w=i[2], in_c=i[3], out_h=o[1], out_w=o[2], out_c=o[3], k_h=k_h, k_w=k_w,
                    stride_h=opt.strideH, stride_w=opt.strideW, dil_h=dil_h, dil_w=dil_w)

    def pads(self) -> dict:
        """Padding as TFLite computes it, from the window already in `fields`."""
        f, opt = self.fields, self.opt
        return dict(pad_h=padding(opt.padding, opt.strideH, f["dil_h"], f["in_h"], f["k_h"], f["out_h"]),
                    pad_w=padding(opt.padding, opt.strideW, f["dil_w"], f["in_w"], f["k_w"], f["out_w"]))

    def fused_activation(self) -> None:
        self.fields["act_min"], self.fields["act_max"] = activation_range(
            self.opt.fusedActivationFunction, self.out_scale, self.out_zp)

    def weighted(self, weights: np.ndarray, w_scales: list, n_out: int) -> None:
        """What conv, depthwise conv and fully connected share: int8 weights, an optional
        int32 bias, per-channel requantization and the fused activation's range."""
        k, op = self.k, self.op
        self.fields["weights"] = self.consts.add("int8_t", f"w{k}", weights.reshape(-1))
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = self.m.const(int(op.inputs[2])).astype(np.int32).reshape(-1)
            self.fields["bias"] = self.consts.add("int32_t", f"b{k}", bias)
        _requant(self.fields, k, self.consts.add, self.in_scale, w_scales, self.out_scale, n_out)
        self.fused_activation()


def _conv(layer: _Layer) -> None:
    w = int(layer.op.inputs[1])
    weights = layer.m.const(w).astype(np.int8)
    w_scales, w_zps, _ = layer.m.quant(w)
    if any(w_zps):
        raise layer.error("has non-zero weight zero points")
    opt, n_out = layer.opt, layer.oshape[3]
    layer.fields.update(layer.window(weights.shape[1], weights.shape[2], opt.dilationHFactor or 1,
                                     opt.dilationWFactor or 1),
                        depth_mult=n_out // layer.ishape[3] if layer.op_name == "DEPTHWISE_CONV_2D" else 1)
    layer.fields.update(layer.pads())
    layer.weighted(weights, w_scales, n_out)


def _fully_connected(layer: _Layer) -> None:
    w = int(layer.op.inputs[1])
    weights = layer.m.const(w).astype(np.int8)
    if weights.ndim != 2 or (layer.opt is not None and layer.opt.weightsFormat != 0):
        raise layer.error("has an unsupported weights layout")
    n_out, n_in = weights.shape
    w_scales, w_zps, _ = layer.m.quant(w)
    layer.fields.update(in_h=int(np.prod(layer.ishape)) // n_in, in_w=1, in_c=n_in, out_h=1, out_w=1,
                        out_c=n_out, w_offset=-w_zps[0])
    layer.weighted(weights, w_scales, n_out)


def _pool(layer: _Layer) -> None:
    if (layer.in_scale, layer.in_zp) != (layer.out_scale, layer.out_zp):
        raise layer.error("rescales; TFLite's int8 pools do not")
    layer.fields.update(layer.window(layer.opt.filterHeight, layer.opt.filterWidth, 1, 1))
    layer.fields.update(layer.pads())
    layer.fused_activation()


def _reshape(layer: _Layer) -> None:
    size = int(np.prod(layer.ishape))
    if size != int(np.prod(layer.oshape)) or (layer.in_scale, layer.in_zp) != (layer.out_scale, layer.out_zp):
        raise layer.error("changes size or quantization")
    layer.fields.update(in_h=1, in_w=1, in_c=size)


def _softmax(layer: _Layer) -> None:
    depth = layer.ishape[-1]
    layer.fields.update(in_h=int(np.prod(layer.ishape[:-1])), in_w=1, in_c=depth, out_c=depth)
    beta = float(layer.opt.beta) if layer.opt is not None else 1.0
    layer.fields["table"] = layer.consts.add("float", f"t{layer.k}", softmax_table(layer.in_scale, beta))
    layer.fields["out_scale"] = float(np.float32(layer.out_scale))


_OP_STEPS = {"CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
             "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool, "RESHAPE": _reshape, "SOFTMAX": _softmax}


def _model_c(header: str, name: str, consts: _Constants, ops: list, arena: int, inp: dict, out: dict) -> str:
    op_lines = []
    for fields in ops:
        parts = [f".{key} = {float(value).hex() + 'f' if isinstance(value, float) else value}"
                 for key, value in fields.items()]
        op_lines.append("    {" + ", ".join(parts) + "},")
    return "\n".join([
        header, '#include "engine.h"', '#include "model.h"', "",
        *consts.definitions, "",
        f"static const eng_op_t ops[{len(ops)}] = {{", *op_lines, "};", "",
        "const eng_model_t eng_model = {",
        f'    .name = "{_c_string(name)}", .ops = ops, .n_ops = {len(ops)}, .arena_bytes = {arena},',
        f"    .input = {inp['offset']}, .input_bytes = {inp['bytes']},",
        f"    .output = {out['offset']}, .output_bytes = {out['bytes']},",
        f"    .output_scale = {float(np.float32(out['scale'])).hex()}f, .output_zp = {out['zero_point']},",
        "};", ""])


def _model_h(header: str, arena: int, inp: dict) -> str:
    return "\n".join([header, "#ifndef MODEL_H", "#define MODEL_H", f"#define ARENA_BYTES {max(arena, 4)}",
                      f"#define INPUT_BYTES {inp['bytes']}", "#endif", ""])


# The widths of eng_op_t's fields (firmware/src/engine.h): a bigger model is refused, not truncated.
_FIELD_MAX = {**{f: 0xFFFF for f in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c")},
              **{f: 0xFF for f in ("k_h", "k_w", "stride_h", "stride_w", "dil_h", "dil_w",
                                   "pad_h", "pad_w", "depth_mult")}}


def _check_ranges(path, k, op_name, fields):
    for name, limit in _FIELD_MAX.items():
        value = fields.get(name, 0)
        if not 0 <= value <= limit:
            raise ExportError(f"{path}: operator {k} ({op_name}): {name} = {value} exceeds the engine's "
                              f"limit {limit}")


def _requant(fields, k, emit, in_scale, w_scales, out_scale, n_out):
    """Per-channel multipliers and shifts as TFLite's PopulateConvolutionQuantizationParams."""
    if len(w_scales) not in (1, n_out):
        raise ExportError(f"operator {k}: {len(w_scales)} weight scales for {n_out} output channels")
    scales = w_scales if len(w_scales) == n_out else w_scales * n_out
    pairs = [quantize_multiplier(float(in_scale) * float(s) / float(out_scale)) for s in scales]
    fields["mult"] = emit("int32_t", f"m{k}", [p[0] for p in pairs])
    fields["shift"] = emit("int8_t", f"s{k}", [p[1] for p in pairs])


def _plan_arena(m, ops, graph_in, graph_out) -> tuple[dict, int]:
    """Offsets for the activation tensors: first fit by lifetime. The input stays live for
    the whole run, so `infer N` loads it once, as MLPerf Tiny's th_load_tensor does."""
    last = len(ops)
    lifetime = {graph_in: [0, last]}
    for i, op in enumerate(ops):
        lifetime.setdefault(op["out"], [i, i])
        lifetime[op["in"]][1] = max(lifetime[op["in"]][1], i)
    lifetime[graph_out][1] = last
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    offsets = {}
    for tensor, (first, end) in lifetime.items():
        size = (int(np.prod(m.shape(tensor))) + 3) // 4 * 4
        clashes = sorted((o, s) for o, s, f, e in placed if not (e < first or f > end))
        offset = 0
        for o, s in clashes:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, first, end))
        offsets[tensor] = offset
    return offsets, max((o + s for o, s, _, _ in placed), default=0)


def _c_string(text: str) -> str:
    """Letters, digits and ``-_.`` of ASCII only: safe inside a C string or comment and in the
    DUT's ``m-model-[...]`` reply (a file name may hold quotes, ``*/`` or non-ASCII)."""
    return "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in text)
