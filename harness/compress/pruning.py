"""Unstructured magnitude pruning (Han et al. 2015, "Learning both Weights and Connections").

Weights below a per-layer magnitude threshold become zero. The per-layer sparsities come
from a sensitivity scan on calibration-side data: starting from the dense model, the layer
whose next pruning step costs the least top-1 per removed weight is pruned one step
further, until the whole model reaches the target sparsity (Han et al. prune the
less-sensitive layers harder the same way). Without ``ctx.evaluate`` every layer gets the
target sparsity. Biases are not pruned (as in the paper).
"""
from __future__ import annotations

import numpy as np

from . import onnx_graph as g
from ..registry import Option
from . import technique
from .base import BuildContext, BuildResult
from .finetune import fine_tune
from .sensitivity import scan
from .sparse_format import sparse_storage_bytes

SCAN_STEP = 0.05


def prune_array(w: np.ndarray, sparsity: float) -> tuple[np.ndarray, float]:
    """Zero the ``sparsity`` fraction of smallest-magnitude entries; returns (pruned, threshold)."""
    k = int(round(sparsity * w.size))
    if k <= 0:
        return w.copy(), 0.0
    flat = np.abs(w).ravel()
    threshold = float(np.partition(flat, k - 1)[k - 1])
    order = np.argsort(flat, kind="stable")[:k]     # exactly k zeros even with ties
    out = w.copy().ravel()
    out[order] = 0.0
    return out.reshape(w.shape), threshold


def _grid(maximum: float) -> list:
    steps = int(round(maximum / SCAN_STEP))
    return [round(SCAN_STEP * i, 4) for i in range(1, steps + 1)]


def allocate(sizes: dict, drops: dict, target: float, maximum: float) -> dict:
    """Per-layer sparsity reaching ``target`` overall, cheapest top-1 loss first (greedy).

    sizes: {layer: weights}; drops: {layer: {sparsity: top-1 drop}} on the scan grid.
    """
    total = sum(sizes.values())
    chosen = {name: 0.0 for name in sizes}
    grid = _grid(maximum)

    def pruned():
        return sum(chosen[n] * sizes[n] for n in sizes)

    while pruned() < target * total - 1e-9:
        best, best_cost = None, None
        for name in sizes:
            nxt = [s for s in grid if s > chosen[name] + 1e-9]
            if not nxt:
                continue
            step = nxt[0]
            before = drops[name].get(chosen[name], 0.0) if chosen[name] else 0.0
            cost = (max(drops[name][step], 0.0) - max(before, 0.0)) / ((step - chosen[name]) * sizes[name])
            # ties: the larger layer first, it moves the total the most
            key = (cost, -sizes[name])
            if best is None or key < best_cost:
                best, best_cost = (name, step), key
        if best is None:
            break
        chosen[best[0]] = best[1]
    return chosen


def magnitude_prune(ctx: BuildContext, model, sparsity: float, maximum: float, use_scan: bool,
                    chosen: dict | None = None):
    """Prune ``model`` in place to ``sparsity`` overall (or to the ``chosen`` per-layer
    sparsities, e.g. a search's; other layers get ``sparsity``); returns per-layer facts and
    the allocation mode."""
    layers = g.weight_layers(model)
    sizes = {l.name: g.get_weight(model, l).size for l in layers}
    per_layer = {l.name: sparsity for l in layers}
    mode = "uniform"
    if chosen:
        per_layer.update(chosen)
        mode = "per-layer"
    elif use_scan and 0.0 < sparsity:
        def apply(m, layer, s):
            g.set_weight(m, layer, prune_array(g.get_weight(m, layer), s)[0])
        result = scan(ctx, model, layers, _grid(maximum), apply)
        if result is not None:
            _, drops = result
            per_layer = allocate(sizes, drops, sparsity, maximum)
            mode = "sensitivity"
    facts = {}
    for layer in layers:
        w = g.get_weight(model, layer)
        pruned, threshold = prune_array(w, min(per_layer[layer.name], maximum))
        g.set_weight(model, layer, pruned)
        facts[layer.name] = {"kind": layer.kind, "weights": int(w.size),
                             "sparsity": round(float(1 - np.count_nonzero(pruned) / w.size), 4),
                             "threshold": threshold}
    return facts, mode


def mask_projection(model):
    """Projection for fine-tuning: pruned weights stay zero."""
    masks = {l.weight: g.get_array(model, l.weight) != 0 for l in g.weight_layers(model)}

    def project(weights):
        return {n: np.where(masks[n], w, 0.0).astype(np.float32) for n, w in weights.items() if n in masks}
    return project


@technique("prune-magnitude", options={
               "sparsity": Option(float, 0.8, minimum=0.0, maximum=0.99, help="the model's share of zero weights"),
               "max_layer_sparsity": Option(float, 0.97, minimum=0.0, maximum=0.99,
                                            help="no layer is pruned beyond this"),
               "sensitivity": Option(bool, True, help="per-layer sparsity from a sensitivity scan (else uniform)"),
               "fine_tune": Option(bool, True, help="retrain after pruning when the manifest has a training hook"),
               "layer_sparsity": Option(dict, None, help="{layer: sparsity} chosen per layer (e.g. by a search)"),
           },
           description="Unstructured magnitude pruning with per-layer thresholds from a sensitivity scan")
def build_prune_magnitude(ctx: BuildContext) -> BuildResult:
    sparsity = ctx.param("sparsity")
    maximum = ctx.param("max_layer_sparsity")
    use_scan = ctx.param("sensitivity")
    tune = ctx.param("fine_tune")
    model = g.load(ctx.base)
    g.require_layers(model, "prune-magnitude")
    chosen = ctx.layer_param("layer_sparsity", [l.name for l in g.weight_layers(model)], float,
                             minimum=0.0, maximum=0.99)
    limit = max([maximum, sparsity, *chosen.values()])   # a chosen sparsity is not capped
    facts, mode = magnitude_prune(ctx, model, sparsity, limit, use_scan, chosen)
    pruned = sparsity > 0 or any(v > 0 for v in chosen.values())
    model, tuning = fine_tune(ctx, model, mask_projection(model), enabled=tune and pruned)
    g.save(model, ctx.out)
    weights = sum(f["weights"] for f in facts.values())
    zeros = sum(f["weights"] * f["sparsity"] for f in facts.values())
    info = {"target_sparsity": sparsity, "sparsity": round(zeros / weights, 4) if weights else 0.0,
            "allocation": mode, "layers": facts, **tuning}
    return BuildResult(ctx.out, info, storage_bytes=sparse_storage_bytes(model))
