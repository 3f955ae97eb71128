"""The graph every technique starts from: one normal form for models nobody here made.

Exporters store weights in different places. Paddle2ONNX (PP-OCR) writes every weight as
a ``Constant`` node, PyTorch's exporter puts whole networks inside ``If`` branches
(silero-vad), and tied or de-duplicated graphs share one initializer between several
nodes. A technique that looked only for initializers used once would change nothing and
still report success. So before any technique:

* ``Constant`` nodes of the main graph that hold a tensor become initializers of the same
  name (the graph computes exactly the same thing);
* weight operators inside ``If``/``Loop``/``Scan`` subgraphs are found and named: the
  techniques do not rewrite subgraphs, so they refuse such a model by name;
* an initializer that several weight operators read is named with its readers: a
  technique that rewrites weights per layer refuses it rather than change two layers at
  once (whole-graph converters, fp16 and onnxruntime's quantizers, convert it once).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import onnx

from ..errors import ModelError

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN")
SUBGRAPH_OPS = ("If", "Loop", "Scan")


@dataclass
class NormalForm:
    """What normalization did and found (kept in the variant's info)."""
    constants_moved: int = 0
    subgraph_weights: dict = field(default_factory=dict)   # {If/Loop/Scan node: [weight op names]}
    shared: dict = field(default_factory=dict)             # {initializer: [node names that read it]}

    def as_info(self) -> dict:
        return {"constants_moved": self.constants_moved,
                "subgraph_weights": {k: list(v) for k, v in self.subgraph_weights.items()},
                "shared_initializers": {k: list(v) for k, v in self.shared.items()}}


def _node_label(node) -> str:
    return node.name or f"{node.op_type}->{node.output[0] if node.output else '?'}"


def constants_to_initializers(model: onnx.ModelProto) -> int:
    """Move the main graph's tensor-valued Constant nodes into initializers; returns how many."""
    keep, moved = [], 0
    taken = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and value is not None \
                and value.type == onnx.AttributeProto.TENSOR and node.output[0] not in taken:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
            taken.add(tensor.name)
            moved += 1
        else:
            keep.append(node)
    if moved:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return moved


def _subgraphs(node):
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            yield a.g
        elif a.type == onnx.AttributeProto.GRAPHS:
            yield from a.graphs


def _weight_ops_inside(graph) -> list:
    found = []
    for node in graph.node:
        if node.op_type in WEIGHT_OPS:
            found.append(_node_label(node))
        for sub in _subgraphs(node):
            found.extend(_weight_ops_inside(sub))
    return found


def subgraph_weights(model: onnx.ModelProto) -> dict:
    """{control-flow node: [weight operators in its subgraphs]}, main graph nodes only."""
    out = {}
    for node in model.graph.node:
        if node.op_type in SUBGRAPH_OPS:
            inside = [w for sub in _subgraphs(node) for w in _weight_ops_inside(sub)]
            if inside:
                out[_node_label(node)] = inside
    return out


def _readers(graph, names, found):
    """Every node (subgraphs included) that reads one of ``names``; implicit subgraph reads too."""
    for node in graph.node:
        for name in node.input:
            if name in names:
                found.setdefault(name, []).append(_node_label(node))
        for sub in _subgraphs(node):
            _readers(sub, names, found)
    return found


def shared_weights(model: onnx.ModelProto) -> dict:
    """Initializers read as a weight or bias of a weight operator and read by more than one node."""
    inits = {t.name for t in model.graph.initializer}
    params = set()
    for node in model.graph.node:
        if node.op_type in WEIGHT_OPS:
            params.update(i for i in node.input[1:] if i in inits)
    readers = _readers(model.graph, params, {})
    return {name: nodes for name, nodes in readers.items() if len(nodes) > 1}


def normalize(model: onnx.ModelProto) -> NormalForm:
    """Bring ``model`` (in place) into the normal form and describe what is left to refuse."""
    form = NormalForm(constants_moved=constants_to_initializers(model))
    form.subgraph_weights = subgraph_weights(model)
    form.shared = shared_weights(model)
    return form


def float16_base(model: onnx.ModelProto) -> list:
    """Names of the graph inputs and initializers already stored in float16."""
    half = onnx.TensorProto.FLOAT16
    names = [i.name for i in model.graph.input if i.type.tensor_type.elem_type == half]
    names += [t.name for t in model.graph.initializer if t.data_type == half]
    return names


def refuse_unsupported(model: onnx.ModelProto, technique: str) -> None:
    """Raise the refusal a per-layer technique owes a model it cannot transform faithfully."""
    inside = subgraph_weights(model)
    if inside:
        where = "; ".join(f"{k} holds {', '.join(v[:5])}{' ...' if len(v) > 5 else ''}"
                          for k, v in inside.items())
        raise ModelError(f"{technique}: weights inside control-flow subgraphs are not transformed "
                         f"({where}); refused rather than leave them unchanged")
    shared = shared_weights(model)
    if shared:
        where = "; ".join(f"{k} read by {', '.join(v)}" for k, v in shared.items())
        raise ModelError(f"{technique}: an initializer is shared by several nodes ({where}); "
                         "changing it for one would change the others, refused")


def same_graph(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    """True when two models compute with the same nodes and the same initializer bytes."""
    def key(m):
        g = onnx.GraphProto()
        g.CopyFrom(m.graph)
        del g.value_info[:]
        inits = sorted((t.name, t.SerializeToString()) for t in g.initializer)
        del g.initializer[:]
        return g.SerializeToString(), inits
    return key(a) == key(b)


__all__ = ["NormalForm", "normalize", "constants_to_initializers", "subgraph_weights", "shared_weights",
           "float16_base", "refuse_unsupported", "same_graph"]
