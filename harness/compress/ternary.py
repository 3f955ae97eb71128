"""Ternary weights, post-training (after Zhu et al. 2016, "Trained Ternary Quantization").

Each layer's weights become {-Wn, 0, +Wp}: weights above t x max|w| take +Wp, below
-t x max|w| take -Wn, the rest 0. TTQ learns Wp and Wn; without training we set each to the
mean magnitude of the weights it replaces (the least-squares choice for that assignment).
With a training hook the ternary model is fine-tuned under the same projection.
As in the paper the first and the last layer stay full precision by default.

The deployable model is dense fp32 with ternary values (any runtime runs it); the storage
size counts 2 bits per weight plus Wp and Wn per layer.
"""
from __future__ import annotations

import numpy as np

from . import onnx_graph as g
from ..registry import Option
from . import technique
from .base import BuildContext, BuildResult
from .finetune import fine_tune


def ternarize(w: np.ndarray, t: float):
    """(ternary weights, Wp, Wn) with threshold t x max|w|."""
    delta = t * float(np.abs(w).max()) if w.size else 0.0
    pos, neg = w > delta, w < -delta
    wp = float(w[pos].astype(np.float64).mean()) if pos.any() else 0.0
    wn = float(-w[neg].astype(np.float64).mean()) if neg.any() else 0.0
    out = np.zeros_like(w, dtype=np.float32)
    out[pos], out[neg] = wp, -wn
    return out, wp, wn


def _projection(ts: dict):
    def project(weights):
        return {n: ternarize(w, ts[n])[0] for n, w in weights.items() if n in ts}
    return project


@technique("ternary", options={
               "threshold": Option(float, 0.05, minimum=0.0, maximum=1.0, help="t: weights below t x max|w| become 0"),
               "keep_first_last": Option(bool, True, help="keep the first and last layers in float"),
               "fine_tune": Option(bool, True, help="retrain after ternarizing when the manifest has a training hook"),
           },
           description="Per-layer {-Wn, 0, +Wp} weights with threshold t x max|w| (after TTQ)")
def build_ternary(ctx: BuildContext) -> BuildResult:
    t = ctx.param("threshold")
    keep = ctx.param("keep_first_last")
    tune = ctx.param("fine_tune")
    model = g.load(ctx.base)
    layers = g.require_layers(model, "ternary")
    chosen = layers[1:-1] if keep and len(layers) > 2 else ([] if keep else layers)
    facts, ts = {}, {}
    for layer in layers:
        if layer not in chosen:
            facts[layer.name] = {"kind": layer.kind, "ternary": False}
            continue
        w = g.get_weight(model, layer)
        tw, wp, wn = ternarize(w, t)
        g.set_weight(model, layer, tw)
        ts[layer.weight] = t
        facts[layer.name] = {"kind": layer.kind, "ternary": True, "wp": wp, "wn": wn,
                             "sparsity": round(float(np.mean(tw == 0)), 4)}
    model, tuning = fine_tune(ctx, model, _projection(ts), enabled=tune and bool(ts))
    g.save(model, ctx.out)
    # storage: 2 bits per ternary weight + Wp, Wn; everything else at 32 bits
    bits = 0
    for t_ in model.graph.initializer:
        if t_.data_type not in (1, 10, 11):
            continue
        n = g.get_array(model, t_.name).size
        bits += (2 * n + 64) if t_.name in ts else 32 * n
    info = {"threshold": t, "keep_first_last": keep, "layers": facts, **tuning}
    return BuildResult(ctx.out, info, storage_bytes=(bits + 7) // 8)
