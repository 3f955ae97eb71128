"""Sensitivity scans: how much calibration-side top-1 a model loses when one layer changes.

Only ``ctx.evaluate`` is used (calibration-side data, never the test split). A scan that
has no ``evaluate`` returns None and the caller falls back to a uniform setting and says so.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from .onnx_graph import remove_unused_initializers, weight_layers


def accuracy(ctx, model: onnx.ModelProto) -> float:
    """Top-1 of an in-memory model through ``ctx.evaluate`` (which takes a file)."""
    with tempfile.TemporaryDirectory(prefix="harness-scan-") as tmp:
        path = Path(tmp) / "candidate.onnx"
        m = onnx.ModelProto()
        m.CopyFrom(model)
        remove_unused_initializers(m)     # a replaced weight left behind would only be noise
        onnx.save(m, str(path))
        return float(ctx.evaluate(path))


def scan(ctx, model, layers, settings, apply):
    """Top-1 drop of each (layer, setting), every other layer left as in ``model``.

    ``apply(copy, layer, setting)`` changes one layer of a copy of the model in place.
    Returns (base_top1, {layer.name: {setting: drop}}) or None without ``ctx.evaluate``.
    """
    if ctx.evaluate is None:
        return None
    base = accuracy(ctx, model)
    drops = {}
    for layer_index, layer in enumerate(layers):
        drops[layer.name] = {}
        for setting in settings:
            candidate = onnx.ModelProto()
            candidate.CopyFrom(model)
            target = [l for l in weight_layers(candidate) if l.weight == layer.weight][0]
            apply(candidate, target, setting)
            drops[layer.name][setting] = base - accuracy(ctx, candidate)
    return base, drops
