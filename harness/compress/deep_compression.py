"""Deep Compression (Han et al. 2016): pruning, k-means weight sharing, Huffman coding.

1. magnitude pruning with per-layer sparsities from the sensitivity scan (pruning.py);
2. the surviving weights of each layer share 2**bits values found by k-means (linear
   initialisation); bits per layer type: ``conv_bits`` (8) and ``fc_bits`` (5), as in the paper;
3. each layer is stored as Han's sparse format (gaps of ``conv_index_bits`` / ``fc_index_bits``
   with filler zeros), the cluster indices and the gaps each Huffman-coded, plus the codebook.

The storage size is the length of that real encoding, which is decoded back and checked
to give exactly the clustered weights; the deployable model is the decoded dense one.
With a training hook the pruned and the clustered model are fine-tuned (mask kept, each
cluster's weights tied to their mean), otherwise it is post-training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from . import huffman
from . import onnx_graph as g
from . import technique
from .base import BuildContext, BuildResult
from .finetune import fine_tune
from .kmeans import kmeans_1d
from .pruning import magnitude_prune, mask_projection
from .sparse_format import from_relative, sparse_storage_bytes, to_relative

HEADER_BYTES = 16   # per layer: shape rank/dims and the stream lengths (a generous bound)


@dataclass
class EncodedLayer:
    shape: tuple
    codebook: np.ndarray           # float32 shared values
    index_bits: int
    gaps: huffman.HuffmanStream    # Huffman-coded relative positions
    values: huffman.HuffmanStream  # Huffman-coded codebook indices (len(codebook) = filler)

    @property
    def storage_bytes(self) -> int:
        return self.gaps.storage_bytes + self.values.storage_bytes + 4 * len(self.codebook) + HEADER_BYTES


def encode_layer(w: np.ndarray, codebook: np.ndarray, labels: np.ndarray, index_bits: int) -> EncodedLayer:
    """``labels`` are the codebook indices of the non-zero entries of ``w`` in C order."""
    gaps, real = to_relative(w.ravel() != 0, index_bits)
    filler = len(codebook)
    symbols = np.full(gaps.size, filler, dtype=np.int64)
    symbols[real] = labels
    return EncodedLayer(tuple(w.shape), codebook.astype(np.float32), index_bits,
                        huffman.encode(gaps, 1 << index_bits), huffman.encode(symbols, filler + 1))


def decode_layer(enc: EncodedLayer) -> np.ndarray:
    gaps = huffman.decode(enc.gaps)
    symbols = huffman.decode(enc.values)
    positions = from_relative(gaps)
    real = symbols != len(enc.codebook)
    dense = np.zeros(int(np.prod(enc.shape)), dtype=np.float32)
    dense[positions[real]] = enc.codebook[symbols[real]]
    return dense.reshape(enc.shape)


def cluster_layer(w: np.ndarray, bits: int, iterations: int):
    """k-means on the non-zero weights; returns (shared weights, codebook, labels)."""
    nonzero = w.ravel() != 0
    codebook, labels = kmeans_1d(w.ravel()[nonzero], 1 << min(bits, 24), iterations)
    shared = np.zeros(w.size, dtype=np.float32)
    shared[nonzero] = codebook[labels]
    return shared.reshape(w.shape), codebook, labels


def sharing_projection(model, labels_of):
    """Fine-tuning projection: zeros stay zero, each cluster's weights become their mean."""
    masks = {l.weight: g.get_array(model, l.weight) != 0 for l in g.weight_layers(model)}

    def project(weights):
        out = {}
        for name, w in weights.items():
            if name not in masks:
                continue
            labels = labels_of[name]
            values = w.ravel()[masks[name].ravel()]
            means = np.bincount(labels, weights=values) / np.maximum(np.bincount(labels), 1)
            shared = np.zeros(w.size, dtype=np.float32)
            shared[masks[name].ravel()] = means[labels]
            out[name] = shared.reshape(w.shape)
        return out
    return project


@technique("deep-compression",
           params=("sparsity", "max_layer_sparsity", "sensitivity", "conv_bits", "fc_bits",
                   "conv_index_bits", "fc_index_bits", "iterations", "fine_tune"),
           description="Pruning + k-means weight sharing + Huffman coding (Han et al. 2016)")
def build_deep_compression(ctx: BuildContext) -> BuildResult:
    sparsity = ctx.param("sparsity", float, 0.8, minimum=0.0, maximum=0.99)
    maximum = ctx.param("max_layer_sparsity", float, 0.97, minimum=0.0, maximum=0.99)
    use_scan = ctx.param("sensitivity", bool, True)
    bits = {"conv": ctx.param("conv_bits", int, 8, minimum=1, maximum=32),
            "fc": ctx.param("fc_bits", int, 5, minimum=1, maximum=32)}
    index_bits = {"conv": ctx.param("conv_index_bits", int, 8, minimum=1, maximum=16),
                  "fc": ctx.param("fc_index_bits", int, 5, minimum=1, maximum=16)}
    iterations = ctx.param("iterations", int, 50, minimum=1, maximum=1000)
    tune = ctx.param("fine_tune", bool, True)

    model = g.load(ctx.base)
    dense_bytes = g.dense_weight_bytes(model)
    facts, mode = magnitude_prune(ctx, model, sparsity, max(maximum, sparsity), use_scan)
    model, tuned_pruning = fine_tune(ctx, model, mask_projection(model), enabled=tune and sparsity > 0)
    pruned_bytes = sparse_storage_bytes(model)

    layers = g.weight_layers(model)
    labels_of, books = {}, {}
    for layer in layers:
        shared, codebook, labels = cluster_layer(g.get_weight(model, layer), bits[layer.kind], iterations)
        g.set_weight(model, layer, shared)
        labels_of[layer.weight], books[layer.weight] = labels, codebook
    model, tuned_sharing = fine_tune(ctx, model, sharing_projection(model, labels_of), enabled=tune)

    storage, fixed_bits = 0, 0
    for layer in layers:
        w = g.get_weight(model, layer)
        nonzero = w.ravel() != 0
        values = w.ravel()[nonzero]
        # after fine-tuning the codebook is the tuned cluster means; re-read it from the weights
        codebook = np.unique(values).astype(np.float32)
        labels = np.searchsorted(codebook, values)
        enc = encode_layer(w, codebook, labels, index_bits[layer.kind])
        decoded = decode_layer(enc)
        if not np.array_equal(decoded, w):
            raise ModelError(f"{ctx.source}: deep-compression: the encoding of {layer.name} "
                             "does not decode to its weights")
        g.set_weight(model, layer, decoded)      # the deployable model is the decoded one
        entries = enc.gaps.count
        value_bits = int(np.ceil(np.log2(len(codebook) + 1))) if len(codebook) else 0
        fixed_bits += entries * (index_bits[layer.kind] + value_bits) + 32 * len(codebook)
        storage += enc.storage_bytes
        facts[layer.name].update({
            "bits": bits[layer.kind], "shared_weights": int(len(codebook)),
            "index_bits": index_bits[layer.kind], "entries": int(entries),
            "fillers": int(entries - np.count_nonzero(nonzero)),
            "huffman_bits_per_value": round(enc.values.nbits / max(entries, 1), 3),
            "huffman_bits_per_index": round(enc.gaps.nbits / max(entries, 1), 3),
            "storage_bytes": int(enc.storage_bytes)})
    layer_names = {l.weight for l in layers}
    others = 4 * sum(g.get_array(model, t.name).size for t in model.graph.initializer
                     if t.name not in layer_names and t.data_type in (1, 10, 11))
    storage += others
    g.save(model, ctx.out)
    fine_tuned = tuned_pruning["fine_tuned"] or tuned_sharing["fine_tuned"]
    weights = sum(f["weights"] for f in facts.values())
    zeros = sum(f["weights"] * f["sparsity"] for f in facts.values())
    info = {
        "target_sparsity": sparsity, "sparsity": round(zeros / weights, 4) if weights else 0.0,
        "allocation": mode, "conv_bits": bits["conv"], "fc_bits": bits["fc"],
        "conv_index_bits": index_bits["conv"], "fc_index_bits": index_bits["fc"],
        # the paper's three columns: after pruning, + weight sharing, + Huffman
        "ratio_pruning": round(dense_bytes / pruned_bytes, 2),
        "ratio_pruning_sharing": round(dense_bytes / ((fixed_bits + 7) // 8 + others), 2),
        "ratio_total": round(dense_bytes / storage, 2),
        "dense_fp32_bytes": dense_bytes, "other_initializer_bytes": others,
        "layers": facts, "fine_tuned": fine_tuned, "post_training": not fine_tuned,
    }
    return BuildResult(ctx.out, info, storage_bytes=int(storage))
