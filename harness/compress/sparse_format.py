"""Han et al.'s sparse index encoding: each non-zero weight stores the gap to the previous one.

A gap is a fixed-width field of ``index_bits`` (8 for conv and 5 for fully connected layers
in Deep Compression). A gap too large for the field is bridged with filler entries: a
filler stands for a zero weight and advances the position by 2**index_bits.
Pure numpy; ``to_relative`` and ``from_relative`` round-trip exactly.
"""
from __future__ import annotations

import numpy as np

from . import onnx_graph as g

INDEX_BITS = {"conv": 8, "fc": 5}


def to_relative(flat_nonzero: np.ndarray, index_bits: int):
    """Gaps of the non-zero positions of a flat mask; returns (gaps, real).

    ``real[i]`` is False for filler entries (zeros inserted to keep gaps within the field).
    """
    span = 1 << index_bits                      # a filler advances by this much
    positions = np.flatnonzero(flat_nonzero)
    gaps = np.diff(positions, prepend=-1) - 1
    fillers = gaps // span
    remainder = gaps % span
    count = fillers + 1
    real = np.zeros(int(count.sum()), dtype=bool)
    ends = np.cumsum(count) - 1
    real[ends] = True
    out = np.full(real.size, span - 1, dtype=np.int64)
    out[ends] = remainder
    return out, real


def from_relative(gaps: np.ndarray) -> np.ndarray:
    """Positions of every entry (fillers included) from the gaps."""
    return np.cumsum(np.asarray(gaps, dtype=np.int64) + 1) - 1


def layer_index_bits(kind: str, conv_bits=INDEX_BITS["conv"], fc_bits=INDEX_BITS["fc"]) -> int:
    return conv_bits if kind == "conv" else fc_bits


def sparse_storage_bytes(model, value_bits: int = 32) -> int:
    """Bytes of the model's weights in the sparse format with ``value_bits`` per stored value.

    Weight layers: (value + gap) per entry, fillers included; every other float initializer
    (biases, ...) dense at 32 bits. Used for pruned variants without clustering.
    """
    bits = 0
    layer_weights = set()
    for layer in g.weight_layers(model):
        w = g.get_weight(model, layer)
        index_bits = layer_index_bits(layer.kind)
        gaps, _ = to_relative(w.ravel() != 0, index_bits)
        bits += gaps.size * (value_bits + index_bits)
        layer_weights.add(layer.weight)
    rest = {t.name: t for t in model.graph.initializer if t.name not in layer_weights}
    others = sum(g.get_array(model, n).size for n, t in rest.items()
                 if t.data_type in (1, 10, 11))          # float, float16, double
    return (bits + 7) // 8 + 4 * others
