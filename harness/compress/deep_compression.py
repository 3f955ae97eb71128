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

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from . import huffman
from . import onnx_graph as g
from . import technique
from ..registry import Option
from .base import BuildContext, BuildResult
from .finetune import fine_tune
from .kmeans import kmeans_1d
from .pruning import magnitude_prune, mask_projection
from .sparse_format import from_relative, sparse_storage_bytes, to_relative

@dataclass
class EncodedLayer:
    shape: tuple
    codebook: np.ndarray           # float32 shared values
    index_bits: int
    gaps: huffman.HuffmanStream    # Huffman-coded relative positions
    values: huffman.HuffmanStream  # Huffman-coded codebook indices (len(codebook) = filler)

    def to_bytes(self) -> bytes:
        """shape, index bits, codebook (float32), then the two Huffman streams."""
        head = struct.pack("<B", len(self.shape)) + struct.pack(f"<{len(self.shape)}I", *self.shape)
        head += struct.pack("<BI", self.index_bits, len(self.codebook)) + self.codebook.astype("<f4").tobytes()
        return head + huffman.to_bytes(self.gaps) + huffman.to_bytes(self.values)

    @classmethod
    def from_bytes(cls, blob: bytes, offset: int = 0):
        (ndim,) = struct.unpack_from("<B", blob, offset)
        shape = struct.unpack_from(f"<{ndim}I", blob, offset + 1)
        offset += 1 + 4 * ndim
        index_bits, k = struct.unpack_from("<BI", blob, offset)
        offset += 5
        codebook = np.frombuffer(blob, dtype="<f4", count=k, offset=offset).astype(np.float32)
        offset += 4 * k
        gaps, offset = huffman.from_bytes(blob, offset)
        values, offset = huffman.from_bytes(blob, offset)
        return cls(tuple(shape), codebook, index_bits, gaps, values), offset

    @property
    def storage_bytes(self) -> int:
        return len(self.to_bytes())


def pack(layers: list, others: list) -> bytes:
    """The stored model: encoded weight layers, then the other float tensors (biases) raw.

    Tensor names and the graph are not stored: the decoder has the base graph, and the
    layers come in its order.
    """
    blob = struct.pack("<I", len(layers)) + b"".join(e.to_bytes() for e in layers)
    blob += struct.pack("<I", len(others))
    for a in others:
        blob += struct.pack("<I", a.size) + np.asarray(a, dtype="<f4").tobytes()
    return blob


def unpack(blob: bytes):
    """Inverse of ``pack``: (dense weight arrays, other tensors as flat float32)."""
    (n,), offset = struct.unpack_from("<I", blob, 0), 4
    weights = []
    for _ in range(n):
        enc, offset = EncodedLayer.from_bytes(blob, offset)
        weights.append(decode_layer(enc))
    (m,) = struct.unpack_from("<I", blob, offset)
    offset += 4
    others = []
    for _ in range(m):
        (size,) = struct.unpack_from("<I", blob, offset)
        others.append(np.frombuffer(blob, dtype="<f4", count=size, offset=offset + 4).astype(np.float32))
        offset += 4 + 4 * size
    return weights, others


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
    values = w.ravel()[nonzero]
    codebook, labels = kmeans_1d(values, 1 << min(bits, 24), iterations)
    # a centroid of exactly 0 (members of both signs) would merge its weights into the pruned
    # zeros; it takes its member nearest zero instead, which is a non-zero weight
    for k in np.flatnonzero(codebook == 0):
        members = values[labels == k]
        codebook[k] = members[np.argmin(np.abs(members))]
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


@technique("deep-compression", options={
    "sparsity": Option(float, 0.8, minimum=0.0, maximum=0.99,
                       help="share of fc/conv weights pruned overall (per layer from the sensitivity scan)"),
    "max_layer_sparsity": Option(float, 0.97, minimum=0.0, maximum=0.99,
                                 help="the most any one layer is pruned"),
    "sensitivity": Option(bool, True, help="spread sparsity by a per-layer sensitivity scan (else uniform)"),
    "conv_bits": Option(int, 8, minimum=1, maximum=32, help="conv layers share 2**bits weight values (Han: 8)"),
    "fc_bits": Option(int, 5, minimum=1, maximum=32, help="fc layers share 2**bits weight values (Han: 5)"),
    "conv_index_bits": Option(int, 8, minimum=1, maximum=16,
                              help="bits per gap between kept conv weights (Han: 8)"),
    "fc_index_bits": Option(int, 5, minimum=1, maximum=16,
                            help="bits per gap between kept fc weights (Han: 5)"),
    "iterations": Option(int, 50, minimum=1, maximum=1000, help="k-means iterations per layer"),
    "fine_tune": Option(bool, True, help="retrain (masks and shared weights kept) when the manifest has a training hook"),
}, description="Pruning + k-means weight sharing + Huffman coding (Han et al. 2016)")
def build_deep_compression(ctx: BuildContext) -> BuildResult:
    sparsity = ctx.param("sparsity")
    maximum = ctx.param("max_layer_sparsity")
    use_scan = ctx.param("sensitivity")
    bits = {"conv": ctx.param("conv_bits"), "fc": ctx.param("fc_bits")}
    index_bits = {"conv": ctx.param("conv_index_bits"), "fc": ctx.param("fc_index_bits")}
    iterations = ctx.param("iterations")
    tune = ctx.param("fine_tune")

    model = g.load(ctx.base)
    g.require_layers(model, "deep-compression")
    dense_bytes = g.dense_weight_bytes(model)
    facts, mode = magnitude_prune(ctx, model, sparsity, max(maximum, sparsity), use_scan)
    model, tuned_pruning = fine_tune(ctx, model, mask_projection(model), enabled=tune and sparsity > 0)
    pruned_bytes = sparse_storage_bytes(model)

    layers = g.weight_layers(model)
    labels_of = _share_weights(model, layers, bits, iterations)
    model, tuned_sharing = fine_tune(ctx, model, sharing_projection(model, labels_of), enabled=tune)
    encoded, fixed_bits = _encode_layers(model, layers, bits, index_bits, facts)
    storage, others = _pack_and_verify(ctx, model, layers, encoded)
    g.save(model, ctx.out)

    fine_tuned = tuned_pruning["fine_tuned"] or tuned_sharing["fine_tuned"]
    weights = sum(f["weights"] for f in facts.values())
    zeros = sum(f["weights"] * f["sparsity"] for f in facts.values())
    info = {
        "target_sparsity": sparsity, "sparsity": round(zeros / weights, 4) if weights else 0.0,
        "allocation": mode, "conv_bits": bits["conv"], "fc_bits": bits["fc"],
        "conv_index_bits": index_bits["conv"], "fc_index_bits": index_bits["fc"],
        # the paper's three columns: after pruning, + weight sharing, + Huffman
        # bit counts without container headers (the paper's columns); ratio_total is the real container
        "ratio_pruning": round(dense_bytes / pruned_bytes, 2),
        "ratio_pruning_sharing": round(dense_bytes / ((fixed_bits + 7) // 8 + others), 2),
        "ratio_total": round(dense_bytes / storage, 2),
        "dense_fp32_bytes": dense_bytes, "other_initializer_bytes": others,
        "layers": facts, "fine_tuned": fine_tuned, "post_training": not fine_tuned,
    }
    return BuildResult(ctx.out, info, storage_bytes=int(storage))


def _share_weights(model, layers, bits: dict, iterations: int) -> dict:
    """Stage 2: each layer's non-zero weights replaced by their k-means centroid; returns
    every layer's cluster labels (fine-tuning keeps the sharing through them)."""
    labels_of = {}
    for layer in layers:
        shared, _codebook, labels = cluster_layer(g.get_weight(model, layer), bits[layer.kind], iterations)
        g.set_weight(model, layer, shared)
        labels_of[layer.weight] = labels
    return labels_of


def _encode_layers(model, layers, bits: dict, index_bits: dict, facts: dict) -> tuple[list, int]:
    """Stage 3: each layer Huffman-coded (values and index gaps); returns the encodings and
    the bits the same entries take at fixed width (the paper's pruning + sharing column).
    Each layer's facts get its codebook size, entries and bits per value and index."""
    encoded, fixed_bits = [], 0
    for layer in layers:
        w = g.get_weight(model, layer)
        nonzero = w.ravel() != 0
        values = w.ravel()[nonzero]
        # after fine-tuning the codebook is the tuned cluster means; re-read it from the weights
        codebook = np.unique(values).astype(np.float32)
        labels = np.searchsorted(codebook, values)
        enc = encode_layer(w, codebook, labels, index_bits[layer.kind])
        encoded.append(enc)
        entries = enc.gaps.count
        value_bits = int(np.ceil(np.log2(len(codebook) + 1))) if len(codebook) else 0
        fixed_bits += entries * (index_bits[layer.kind] + value_bits) + 32 * len(codebook)
        facts[layer.name].update({
            "bits": bits[layer.kind], "shared_weights": int(len(codebook)),
            "index_bits": index_bits[layer.kind], "entries": int(entries),
            "fillers": int(entries - np.count_nonzero(nonzero)),
            "huffman_bits_per_value": round(enc.values.nbits / max(entries, 1), 3),
            "huffman_bits_per_index": round(enc.gaps.nbits / max(entries, 1), 3),
            "storage_bytes": int(enc.storage_bytes)})
    return encoded, fixed_bits


def _pack_and_verify(ctx: BuildContext, model, layers, encoded: list) -> tuple[int, int]:
    """The stored container (encoded layers + the other float initializers as they are);
    the model's weights become the ones decoded from it, checked equal to what was encoded.
    Returns (container bytes, bytes of the other initializers)."""
    layer_names = {l.weight for l in layers}
    other_arrays = [g.get_array(model, t.name) for t in model.graph.initializer
                    if t.name not in layer_names and t.data_type in (1, 10, 11)]
    blob = pack(encoded, other_arrays)
    decoded, _ = unpack(blob)
    for layer, dense in zip(layers, decoded):
        if not np.array_equal(dense, g.get_weight(model, layer)):
            raise ModelError(f"{ctx.source}: deep-compression: the encoding of {layer.name} "
                             "does not decode to its weights")
        g.set_weight(model, layer, dense)
    return len(blob), 4 * sum(a.size for a in other_arrays)
