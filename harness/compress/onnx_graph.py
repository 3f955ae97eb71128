"""Graph plumbing every compression technique needs, written once.

Finds the weight layers of an ONNX model (Conv, Gemm, MatMul with a constant weight),
reads and writes their weights in one canonical layout, replaces nodes, checks and saves,
runs a model, and counts parameters and multiply-accumulates.

Canonical weight layout (what techniques see, whatever the node stores):
    conv: (out_channels, in_channels / group, kh, kw)
    fc:   (out_features, in_features)
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError


@dataclass
class Layer:
    node: onnx.NodeProto
    kind: str                 # "conv" or "fc"
    weight: str               # initializer name of the weight
    bias: Optional[str]       # initializer name of the bias (Gemm C, Conv B, or MatMul's Add)
    transposed: bool = False  # fc weight stored as (in, out): MatMul, or Gemm with transB=0
    bias_node: Optional[onnx.NodeProto] = None   # the Add after a MatMul, when it carries the bias

    @property
    def name(self) -> str:
        return self.node.name or self.weight


def load(path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise ModelError(f"{path}: cannot read the ONNX model: {exc}") from exc


def initializers(model) -> dict:
    return {t.name: t for t in model.graph.initializer}


def get_array(model, name) -> np.ndarray:
    return numpy_helper.to_array(initializers(model)[name])


def set_array(model, name, array) -> None:
    """Replace (or add) initializer ``name`` with ``array``, keeping its position."""
    array = np.asarray(array)
    # ascontiguousarray would turn a scalar (a QDQ scale) into shape [1]
    tensor = numpy_helper.from_array(np.ascontiguousarray(array) if array.ndim else array, name)
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(tensor)
            return
    model.graph.initializer.append(tensor)


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def consumers(model, tensor) -> list:
    return [n for n in model.graph.node if tensor in n.input]


def producer(model, tensor):
    return next((n for n in model.graph.node if tensor in n.output), None)


def weight_layers(model) -> list[Layer]:
    """Conv / Gemm / MatMul nodes whose weight is an initializer, in graph order.

    A model whose weight operators sit inside If/Loop/Scan subgraphs, or whose layer weight
    or bias is shared by several nodes, is refused (ModelError naming the nodes): changing
    it would either miss those weights or change two layers at once.
    """
    from .normalize import refuse_unsupported

    refuse_unsupported(model, "weight layers")
    inits = initializers(model)
    layers = []
    for node in model.graph.node:
        layer = None
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
            bias = node.input[2] if len(node.input) > 2 and node.input[2] in inits else None
            layer = Layer(node, "conv", node.input[1], bias)
        elif node.op_type == "Gemm" and node.input[1] in inits and not attr(node, "transA", 0):
            bias = node.input[2] if len(node.input) > 2 and node.input[2] in inits else None
            if bias is not None and inits[bias].dims and len(inits[bias].dims) != 1:
                continue   # a 2-D C is not a per-output bias
            layer = Layer(node, "fc", node.input[1], bias, transposed=not attr(node, "transB", 0))
        elif node.op_type == "MatMul" and node.input[1] in inits and len(inits[node.input[1]].dims) == 2:
            bias, bias_node = None, None
            after = consumers(model, node.output[0])
            if len(after) == 1 and after[0].op_type == "Add":
                other = [i for i in after[0].input if i != node.output[0]]
                if other and other[0] in inits and len(inits[other[0]].dims) == 1 \
                        and len(consumers(model, other[0])) == 1:
                    bias, bias_node = other[0], after[0]
            layer = Layer(node, "fc", node.input[1], bias, transposed=True, bias_node=bias_node)
        if layer is not None:
            layers.append(layer)
    return layers


def require_layers(model, technique: str, min_elements: int = 1) -> list[Layer]:
    """The weight layers a technique transforms; refuses a model that has none to change."""
    layers = [l for l in weight_layers(model) if get_array(model, l.weight).size >= min_elements]
    if not layers:
        raise ModelError(f"{technique}: no Conv/Gemm/MatMul weight of at least {min_elements} elements "
                         "outside subgraphs; the technique would change nothing")
    return layers


def get_weight(model, layer: Layer) -> np.ndarray:
    w = get_array(model, layer.weight)
    return w.T.copy() if layer.transposed else w


def set_weight(model, layer: Layer, w: np.ndarray) -> None:
    set_array(model, layer.weight, (w.T if layer.transposed else w).astype(np.float32))


def unique_name(model, base: str) -> str:
    taken = {t.name for t in model.graph.initializer} | {n.name for n in model.graph.node}
    taken |= {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    if base not in taken:
        return base
    for i in itertools.count(1):
        if f"{base}_{i}" not in taken:
            return f"{base}_{i}"


def node_index(model, node) -> int:
    """Position of ``node`` in the graph (by identity, else by value: references held
    across a graph rewrite point at copies)."""
    nodes = model.graph.node
    for i, n in enumerate(nodes):
        if n is node:
            return i
    return next(i for i, n in enumerate(nodes) if n == node)


def set_input(model, node, position: int, tensor: str) -> onnx.NodeProto:
    """Make ``node`` (as it is in the graph) read ``tensor`` at input ``position``."""
    live = model.graph.node[node_index(model, node)]
    live.input[position] = tensor
    return live


def replace_node(model, node, new_nodes) -> None:
    """Put ``new_nodes`` where ``node`` was (keeps the topological order).

    Rebuilding the node list copies the nodes: fetch layers again afterwards.
    """
    nodes = list(model.graph.node)
    index = node_index(model, node)
    nodes[index:index + 1] = list(new_nodes)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def remove_unused_initializers(model) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def save(model, path) -> Path:
    """Check the graph (shapes included) and write it; a broken graph never reaches disk."""
    remove_unused_initializers(model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ModelError(f"{path}: the compressed graph is not valid ONNX: {exc}") from exc
    onnx.save(model, str(path))
    return Path(path)


def session(model):
    import onnxruntime as ort

    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def run(model, x: np.ndarray, input_name: Optional[str] = None) -> np.ndarray:
    """First output of ``model`` (a ModelProto or a path) on ``x``, row by row stacked.

    Runs with the model's own input shape when its batch dimension is fixed at 1.
    """
    sess = session(model)
    inp = sess.get_inputs()[0]
    name = input_name or inp.name
    shape = [d if isinstance(d, int) and d > 0 else -1 for d in inp.shape]
    if shape and shape[0] == 1 and len(x) != 1:
        rows = [sess.run(None, {name: x[i:i + 1].reshape([1] + shape[1:]).astype(np.float32)})[0]
                for i in range(len(x))]
        return np.concatenate(rows)
    return sess.run(None, {name: x.reshape([len(x)] + shape[1:]).astype(np.float32)})[0]


def _fix_inputs(model, input_shapes) -> None:
    """Give every graph input its manifest shape; dimensions nobody fixed become 1 (batch 1).

    ``input_shapes``: {input name: shape}, or a bare shape for the first input.
    """
    graph_inputs = [i for i in model.graph.input if i.name not in initializers(model)]
    if input_shapes is not None and not isinstance(input_shapes, dict):
        input_shapes = {graph_inputs[0].name: list(input_shapes)} if graph_inputs else {}
    input_shapes = input_shapes or {}
    for inp in graph_inputs:
        fixed = input_shapes.get(inp.name)
        tensor_type = inp.type.tensor_type
        if fixed is not None:
            tensor_type.ClearField("shape")
            for d in fixed:
                tensor_type.shape.dim.add().dim_value = int(d)
            continue
        if not tensor_type.HasField("shape"):
            continue          # unknown rank: shape inference leaves what depends on it unknown
        for d in tensor_type.shape.dim:
            if not d.dim_value:
                d.ClearField("dim_param")
                d.dim_value = 1


def static_shapes(model, input_shapes=None) -> dict:
    """Static shape of every value whose shape inference knows all dimensions.

    Inputs take ``input_shapes`` (the manifest's fixed shapes), other dynamic dimensions 1.
    A value of unknown rank, or with a dimension still unknown, is left out (never []).
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    _fix_inputs(m, input_shapes)
    del m.graph.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    shapes = {}
    for v in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        tensor_type = v.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tensor_type.shape.dim
        if all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            shapes[v.name] = [d.dim_value for d in dims]
    for t in m.graph.initializer:
        shapes[t.name] = list(t.dims)
    for node in m.graph.node:
        if node.op_type == "Constant":
            value = attr(node, "value")
            if isinstance(value, onnx.TensorProto):
                shapes[node.output[0]] = list(value.dims)
    return shapes


def feeds_for(sess, input_shapes=None) -> dict:
    """Zeros of every graph input at the manifest's shapes (other dynamic dims 1)."""
    input_shapes = input_shapes or {}
    types = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
             "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_, "tensor(int16)": np.int16}
    feed = {}
    for inp in sess.get_inputs():
        shape = input_shapes.get(inp.name) or [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        feed[inp.name] = np.zeros(shape, dtype=types.get(inp.type, np.float32))
    return feed


def runtime_shapes(model, input_shapes, names) -> dict:
    """Shapes of the tensors ``names`` from one onnxruntime run on zeros at ``input_shapes``;
    {} when the model cannot run that way (the counts then stay unknown)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = initializers(m)
    existing = {o.name for o in m.graph.output}
    wanted = [n for n in sorted(names) if n and n not in inits]
    for name in wanted:
        if name not in existing:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
    if input_shapes is not None and not isinstance(input_shapes, dict):
        first = next(i.name for i in m.graph.input if i.name not in inits)
        input_shapes = {first: list(input_shapes)}
    try:
        sess = session(m)
        values = sess.run(wanted, feeds_for(sess, input_shapes))
    except Exception:
        return {}
    return {n: list(np.shape(v)) for n, v in zip(wanted, values)}


def _weight_initializer(model, tensor):
    """The initializer a weight comes from, through DequantizeLinear / Cast (QDQ, fp16 storage)."""
    inits = initializers(model)
    while tensor not in inits:
        node = producer(model, tensor)
        if node is None or node.op_type not in ("DequantizeLinear", "Cast"):
            return None
        tensor = node.input[0]
    return tensor


_MAC_OPS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1, "ConvInteger": 1, "MatMulInteger": 1,
            "QLinearConv": 3, "QLinearMatMul": 3}


def _layer_macs(node, shapes, w_index):
    """MACs of one operator from its shapes, or None when a shape is unknown."""
    out, w_shape = shapes.get(node.output[0]), shapes.get(node.input[w_index])
    if node.op_type == "ConvTranspose":
        # every input value meets C_out/group x k x k weights
        x = shapes.get(node.input[0])
        if x is None or w_shape is None or len(w_shape) < 2:
            return None
        return int(np.prod(x)) * int(np.prod(w_shape[1:]))
    if out is None or w_shape is None or not w_shape:
        return None
    if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
        per_output = int(np.prod(w_shape[1:]))
    elif node.op_type == "Gemm":
        if len(w_shape) != 2:
            return None
        per_output = w_shape[1] if attr(node, "transB", 0) else w_shape[0]
    else:
        per_output = w_shape[-2] if len(w_shape) >= 2 else w_shape[0]
    return int(np.prod(out)) * per_output


def count_macs(model, input_shapes=None) -> dict:
    """Multiply-accumulates of one inference per Conv/ConvTranspose/Gemm/MatMul, dense and with
    zero weights skipped, at ``input_shapes`` (the manifest's fixed input shapes).

    Shapes come from ONNX shape inference, so quantized (QDQ) and fp16-stored weights count too.
    Returns {"macs": int, "sparse_macs": int, "layers": {name: macs}, "unknown": [names]}:
    an operator whose shapes inference cannot know is listed in ``unknown``, never counted as 0.
    """
    from .normalize import subgraph_weights

    shapes = static_shapes(model, input_shapes)
    counted = [(n, _MAC_OPS[n.op_type]) for n in model.graph.node
               if n.op_type in _MAC_OPS and len(n.input) > _MAC_OPS[n.op_type]]
    missing = [(n, w) for n, w in counted if _layer_macs(n, shapes, w) is None]
    if missing:
        # shapes computed from data (Shape -> Slice -> Reshape chains): one run tells them
        shapes.update(runtime_shapes(model, input_shapes,
                                     {t for n, w in missing for t in (n.input[0], n.input[w], n.output[0])}))
    total = sparse = 0
    per_layer = {}
    unknown = list(subgraph_weights(model))     # a branch's MACs depend on which branch runs
    for node, w_index in counted:
        macs = _layer_macs(node, shapes, w_index)
        if macs is None:
            unknown.append(node.name or node.output[0])
            continue
        source = _weight_initializer(model, node.input[w_index])
        density = 1.0
        if source is not None:
            w = get_array(model, source)
            density = np.count_nonzero(w) / w.size if w.size else 0.0
        per_layer[node.name or node.output[0]] = macs
        total += macs
        sparse += int(round(macs * density))
    return {"macs": total, "sparse_macs": sparse, "layers": per_layer, "unknown": unknown}


def _parameter_tensors(model):
    """The stored tensors that are parameters: initializers and tensor Constant nodes.

    Not parameters: integer tensors that only describe shapes (int64, and the inputs of
    Reshape/Expand/Tile...), the scales, zero points and clip bounds of quantization.
    """
    skip = set()
    for n in model.graph.node:
        if n.op_type in ("Reshape", "Expand", "Tile", "Slice", "Resize", "Pad", "Squeeze", "Unsqueeze",
                         "ConstantOfShape", "Upsample", "ReduceMean", "ReduceSum") and len(n.input) > 1:
            skip.update(n.input[1:])
        elif n.op_type in ("QuantizeLinear", "DequantizeLinear", "Clip", "DynamicQuantizeLinear"):
            skip.update(n.input[1:])
    tensors = []

    def collect(graph):          # subgraphs (If/Loop/Scan branches) hold parameters too
        tensors.extend(graph.initializer)
        for n in graph.node:
            value = attr(n, "value") if n.op_type == "Constant" else None
            if isinstance(value, onnx.TensorProto):
                t = onnx.TensorProto()
                t.CopyFrom(value)
                t.name = n.output[0]
                tensors.append(t)
            for a in n.attribute:
                for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else
                            list(a.graphs) if a.type == onnx.AttributeProto.GRAPHS else []):
                    collect(sub)
    collect(model.graph)
    for t in tensors:
        if t.name in skip or t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.BOOL):
            continue
        a = numpy_helper.to_array(t)
        if a.size <= 1:
            continue          # scalars: constants of the arithmetic (eps, 2.0, axes), not weights
        yield t, a


def count_params(model) -> dict:
    """Stored numbers of the parameters: all of them and the non-zero ones."""
    total = nonzero = 0
    for _, a in _parameter_tensors(model):
        total += a.size
        nonzero += int(np.count_nonzero(a))
    return {"params": total, "nonzero_params": nonzero}


def weight_bytes(model) -> int:
    """Bytes the parameters take as stored (int8 1, fp16 2, fp32 4 per number): the weight side
    of every ratio; the same tensors as ``count_params``."""
    return int(sum(a.size * a.dtype.itemsize for _, a in _parameter_tensors(model)))


def model_stats(path, input_shapes=None) -> dict:
    """File size, parameters and MACs of a model file: the columns of the compression table."""
    model = load(path)
    stats = {"file_bytes": Path(path).stat().st_size, "weight_bytes": weight_bytes(model)}
    stats.update(count_params(model))
    stats.update({k: v for k, v in count_macs(model, input_shapes).items() if k not in ("layers", "unknown")})
    return stats


def dense_weight_bytes(model) -> int:
    """Bytes of the float initializers as fp32: the denominator of every storage ratio."""
    return 4 * count_params(model)["params"]


def tensor_values(model, names, x: np.ndarray) -> dict:
    """Values of the intermediate tensors ``names`` over the inputs ``x`` (calibration data).

    The tensors are exposed as extra graph outputs of a copy of the model.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    existing = {o.name for o in m.graph.output}
    for name in names:
        if name not in existing:
            m.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = session(m)
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    wanted = list(names)
    collected = {n: [] for n in wanted}
    for i in range(len(x)):
        sample = x[i:i + 1]
        if sample.size == int(np.prod(shape)):      # flat samples take the model's own shape
            sample = sample.reshape(shape)
        values = sess.run(wanted, {inp.name: sample.astype(np.float32)})
        for n, v in zip(wanted, values):
            collected[n].append(np.asarray(v).ravel())
    return {n: np.concatenate(v) for n, v in collected.items()}

