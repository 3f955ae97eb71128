"""A training hook for small ONNX models, in torch (an optional extra: ``pip install torch``).

The ONNX graph itself is run by a small torch interpreter (Conv, Gemm, MatMul, Add, Relu,
Clip, pooling, Flatten, Reshape, BatchNormalization, Softmax), so no model class is
needed: the float weights of Conv/Gemm/MatMul layers are the trainable parameters, the
graph and its names stay as they are, and the trained values are written back into the
same initializers. That is what pruning, clustering and ternary variants need (their graph
does not change). After every optimizer step the technique's projection is applied
(see finetune.py).

    hook = make_hook("digits")          # trains on the dataset's "train" part only
    hook(in_path, out_path, project)

A manifest asks for it with ``train_hook: torch`` (see ``resolve``).
"""
from __future__ import annotations

import numpy as np

from . import onnx_graph as g


def available() -> bool:
    try:
        import torch  # noqa: F401  (only whether it imports)
    except ImportError:
        return False
    return True


def _constants(model, torch) -> dict:
    from onnx import numpy_helper

    consts = {t.name: torch.from_numpy(g.get_array(model, t.name).copy()) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = torch.from_numpy(numpy_helper.to_array(node.attribute[0].t).copy())
    return consts


def forward_logits(model, params, x, torch, consts=None):
    """Evaluate the graph on ``x`` with torch ops; returns the logits (the input of a final Softmax)."""
    F = torch.nn.functional
    env = dict(consts if consts is not None else _constants(model, torch))
    env.update(params)
    env[model.graph.input[0].name] = x
    last = model.graph.output[0].name
    for node in model.graph.node:
        a = lambda i: env[node.input[i]] if len(node.input) > i and node.input[i] else None
        attr = lambda name, default=None: g.attr(node, name, default)
        op = node.op_type
        if op == "Constant":
            continue
        if op == "Softmax" and node.output[0] == last:
            return a(0)                          # train on logits
        if op == "Conv":
            pads = attr("pads", [0, 0, 0, 0])
            y = F.conv2d(a(0), a(1), a(2), stride=attr("strides", [1, 1]), padding=tuple(pads[:2]),
                         dilation=attr("dilations", [1, 1]), groups=attr("group", 1))
        elif op == "Gemm":
            w = a(1).t() if not attr("transB", 0) else a(1)
            y = a(0) @ w.t()
            if a(2) is not None:
                y = y + a(2)
        elif op == "MatMul":
            y = a(0) @ a(1)
        elif op == "Add":
            y = a(0) + a(1)
        elif op == "Relu":
            y = F.relu(a(0))
        elif op == "Clip":
            y = torch.clamp(a(0), float(a(1)) if a(1) is not None else None, float(a(2)) if a(2) is not None else None)
        elif op == "MaxPool":
            y = F.max_pool2d(a(0), attr("kernel_shape"), attr("strides"))
        elif op == "AveragePool":
            y = F.avg_pool2d(a(0), attr("kernel_shape"), attr("strides"))
        elif op == "GlobalAveragePool":
            y = a(0).mean(dim=(2, 3), keepdim=True)
        elif op == "Flatten":
            y = a(0).flatten(attr("axis", 1))
        elif op == "Reshape":
            shape = [int(s) for s in a(1).tolist()]
            y = a(0).reshape([x.shape[0] if s == 1 and i == 0 else s for i, s in enumerate(shape)])
        elif op == "BatchNormalization":
            y = F.batch_norm(a(0), a(3), a(4), a(1), a(2), False, 0.0, attr("epsilon", 1e-5))
        elif op == "Softmax":
            y = F.softmax(a(0), dim=attr("axis", -1))
        elif op in ("Identity", "Dropout"):
            y = a(0)
        else:
            raise NotImplementedError(f"torch training hook: operator {op} is not supported")
        env[node.output[0]] = y
    return env[last]


def train(model, x, y, project, epochs=30, lr=1e-3, batch=32, seed=0):
    """Fine-tune ``model`` (ModelProto, changed in place) on (x, y) under ``project``."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)          # the models are tiny: threads only add overhead
    layers = g.weight_layers(model)
    params = {l.weight: torch.nn.Parameter(torch.from_numpy(g.get_array(model, l.weight).copy()))
              for l in layers}
    for l in layers:
        if l.bias:
            params[l.bias] = torch.nn.Parameter(torch.from_numpy(g.get_array(model, l.bias).copy()))
    opt = torch.optim.Adam(params.values(), lr=lr)
    xs, ys = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.CrossEntropyLoss()
    consts = _constants(model, torch)
    for _ in range(epochs):
        for idx in torch.randperm(len(ys), generator=gen).split(batch):
            opt.zero_grad()
            loss_fn(forward_logits(model, params, xs[idx], torch, consts), ys[idx]).backward()
            opt.step()
            with torch.no_grad():                # projected gradient descent
                current = {n: p.detach().numpy() for n, p in params.items()}
                for n, v in project(current).items():
                    params[n].copy_(torch.from_numpy(np.asarray(v, dtype=np.float32)))
    for n, p in params.items():
        g.set_array(model, n, p.detach().numpy().astype(np.float32))
    return model


def make_hook(dataset: str, epochs=30, lr=1e-3):
    """The hook for a model trained on ``dataset`` (harness.datasets), reading its train part."""
    from .. import datasets

    def hook(in_path, out_path, project):
        import onnx

        model = g.load(in_path)
        split = datasets.load(dataset, "train")
        shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
        x = split.x.reshape([len(split.x)] + shape[1:])
        onnx.save(train(model, x, split.y, project, epochs=epochs, lr=lr), str(out_path))
    return hook


def resolve(spec, dataset):
    """The hook a manifest's ``train_hook`` names: ``torch`` -> this trainer; None if torch is missing."""
    if spec is None or dataset is None:
        return None
    if spec != "torch":
        raise ValueError(f"unknown train_hook {spec!r}; known: torch")
    return make_hook(dataset) if available() else None
