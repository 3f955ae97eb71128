"""Canonical Huffman coding of integer symbols (pure numpy + heapq; exact round trip).

Only the code lengths are stored (``to_bytes``): canonical codes are rebuilt from them, as
DEFLATE does.
"""
from __future__ import annotations

import heapq
import struct
from dataclasses import dataclass

import numpy as np


@dataclass
class HuffmanStream:
    lengths: np.ndarray      # code length of each symbol 0..alphabet-1 (0 = unused)
    data: bytes              # the packed bit stream
    count: int               # number of symbols encoded
    nbits: int               # bits used in ``data``

    @property
    def storage_bytes(self) -> int:
        """Length of the serialized stream (``to_bytes``)."""
        return len(to_bytes(self))


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code length of each symbol from its count (0 for symbols that never occur)."""
    lengths = np.zeros(len(counts), dtype=np.int64)
    used = [int(i) for i in np.flatnonzero(counts)]
    if len(used) == 1:
        lengths[used[0]] = 1          # one symbol still needs one bit per occurrence
        return lengths
    # heap of (weight, tie-break, symbols in the subtree)
    heap = [(int(counts[s]), s, [s]) for s in used]
    heapq.heapify(heap)
    order = len(counts)
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (w1 + w2, order, s1 + s2))
        order += 1
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code of each symbol: ordered by (length, symbol)."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, previous = 0, 0
    for s in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - previous
        codes[s] = code
        previous = int(lengths[s])
        code += 1
    return codes


def encode(symbols, alphabet: int) -> HuffmanStream:
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet):
        raise ValueError(f"symbols must lie in 0..{alphabet - 1}")
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet))
    codes = canonical_codes(lengths)
    if symbols.size == 0:
        return HuffmanStream(lengths, b"", 0, 0)
    sl, sc = lengths[symbols], codes[symbols]
    width = int(sl.max())
    # bit j of each code, most significant first; keep only the first ``length`` columns
    shifts = (sl[:, None] - 1 - np.arange(width)[None, :])
    bits = (sc[:, None] >> np.maximum(shifts, 0)) & 1
    bits = bits[shifts >= 0].astype(np.uint8)
    return HuffmanStream(lengths, np.packbits(bits).tobytes(), int(symbols.size), int(bits.size))


def decode(stream: HuffmanStream) -> np.ndarray:
    lengths = stream.lengths
    if stream.count == 0:
        return np.zeros(0, dtype=np.int64)
    codes = canonical_codes(lengths)
    table = {(int(lengths[s]), int(codes[s])): int(s) for s in np.flatnonzero(lengths)}
    bits = np.unpackbits(np.frombuffer(stream.data, dtype=np.uint8))[:stream.nbits].tolist()
    out = np.empty(stream.count, dtype=np.int64)
    code = length = k = 0
    for bit in bits:
        code = (code << 1) | bit
        length += 1
        symbol = table.get((length, code))
        if symbol is not None:
            out[k] = symbol
            k += 1
            code = length = 0
    if k != stream.count:
        raise ValueError(f"Huffman stream decoded {k} symbols, expected {stream.count}")
    return out


def to_bytes(stream: HuffmanStream) -> bytes:
    """Serialize: count, table, bit count, bits. The table is either every symbol's code
    length (dense) or (symbol, length) pairs for the used symbols, whichever is shorter."""
    used = np.flatnonzero(stream.lengths)
    fmt = _pair_format(len(stream.lengths))
    pairs = len(used) * struct.calcsize(fmt)
    head = struct.pack("<II", stream.count, len(stream.lengths))
    if pairs < len(stream.lengths):
        table = struct.pack("<BI", 1, len(used)) + b"".join(
            struct.pack(fmt, int(s), int(stream.lengths[s])) for s in used)
    else:
        table = struct.pack("<B", 0) + stream.lengths.astype(np.uint8).tobytes()
    return head + table + struct.pack("<I", stream.nbits) + stream.data


def _pair_format(alphabet: int) -> str:
    return "<BB" if alphabet <= 256 else "<HB" if alphabet <= 65536 else "<IB"


def from_bytes(blob: bytes, offset: int = 0) -> tuple[HuffmanStream, int]:
    """Inverse of ``to_bytes``; returns (stream, offset after it)."""
    count, alphabet = struct.unpack_from("<II", blob, offset)
    offset += 8
    (mode,) = struct.unpack_from("<B", blob, offset)
    offset += 1
    lengths = np.zeros(alphabet, dtype=np.int64)
    if mode == 1:
        (n,) = struct.unpack_from("<I", blob, offset)
        offset += 4
        fmt = _pair_format(alphabet)
        for _ in range(n):
            s, length = struct.unpack_from(fmt, blob, offset)
            lengths[s] = length
            offset += struct.calcsize(fmt)
    else:
        lengths[:] = np.frombuffer(blob, dtype=np.uint8, count=alphabet, offset=offset)
        offset += alphabet
    (nbits,) = struct.unpack_from("<I", blob, offset)
    offset += 4
    size = (nbits + 7) // 8
    return HuffmanStream(lengths, bytes(blob[offset:offset + size]), count, nbits), offset + size
