"""Per-inference latency samples as a compact, exact binary blob (the store's `samples` column).

Layout (little-endian), readable with numpy and zlib alone:

    b"HS1"  version 1
    u1      width: bytes per encoded value (1, 2, 4 or 8)
    u8      count: number of samples
    ...     zlib stream (any strategy: a plain zlib.decompress reads it) of `count` values, each `width` bytes, byte-shuffled

Values are integer nanoseconds (int64). Each is stored as the zigzag-mapped difference from
the previous one (the first from 0), so a steady series needs few significant bytes; the
narrowest width that holds every mapped difference is chosen, and the bytes are shuffled
(all first bytes, then all second bytes, ...) so zlib sees long runs of equal high bytes.
Differences wrap modulo 2^64 and are undone the same way: every int64 round-trips exactly.

Samples that are not whole nanoseconds (a device that divides a window's time by its count)
are kept as they are, exactly: b"HF1", u1 width 8, u8 count, zlib of the byte-shuffled float64s.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

MAGIC = b"HS1"
FLOAT_MAGIC = b"HF1"
_HEADER = struct.Struct("<3sBQ")
_WIDTHS = ((1, np.uint8), (2, np.uint16), (4, np.uint32), (8, np.uint64))
# zlib's run-length strategy: the shuffled high-byte planes are long runs, the low ones noise
# that no match search compresses; twice as fast as the default strategy and a little smaller.
_LEVEL, _STRATEGY = 1, zlib.Z_RLE


class SampleCodecError(ValueError):
    """A blob that is not an encoding of samples, or samples that cannot be encoded."""


def as_int64(samples) -> np.ndarray:
    """The samples as an int64 array; refuses what would not round-trip exactly."""
    if isinstance(samples, np.ndarray) and samples.dtype == np.int64 and samples.ndim == 1:
        return samples
    try:
        array = np.asarray(samples)
    except (OverflowError, ValueError) as exc:
        raise SampleCodecError(f"samples: expected integer nanoseconds within int64, got {exc}") from None
    if array.ndim != 1:
        raise SampleCodecError(f"samples: expected a flat list of integer nanoseconds, got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind in "iu":
        if array.dtype == np.uint64 and array.max() > np.iinfo(np.int64).max:
            raise SampleCodecError("samples: a value exceeds int64 nanoseconds (292 years)")
        return array.astype(np.int64, copy=False)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)) \
            and np.all(np.abs(array) < 2.0 ** 63):
        return array.astype(np.int64)
    raise SampleCodecError(f"samples: expected integer nanoseconds, got values of type {array.dtype}")


def _compress(raw: bytes) -> bytes:
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, 15, 9, _STRATEGY)
    return compressor.compress(raw) + compressor.flush()


def encode(samples) -> bytes:
    try:
        array = samples if isinstance(samples, np.ndarray) else np.asarray(samples)
    except (OverflowError, ValueError) as exc:
        raise SampleCodecError(f"samples: expected integer nanoseconds within int64, got {exc}") from None
    if array.dtype.kind == "f" and array.ndim == 1 and np.all(np.isfinite(array)) \
            and not np.all(array == np.round(array)):
        fractional = array.astype(np.float64, copy=False)
        shuffled = fractional.view(np.uint8).reshape(-1, 8).T.tobytes()
        return _HEADER.pack(FLOAT_MAGIC, 8, fractional.size) + _compress(shuffled)
    values = as_int64(array)
    deltas = np.diff(values, prepend=np.int64(0)) if values.size else values  # wraps modulo 2^64
    zigzag = ((deltas << 1) ^ (deltas >> 63)).view(np.uint64)
    top = int(zigzag.max()) if zigzag.size else 0
    width, dtype = next((w, t) for w, t in _WIDTHS if top <= np.iinfo(t).max)
    narrow = zigzag.astype(dtype)
    shuffled = narrow.view(np.uint8).reshape(-1, width).T.tobytes() if width > 1 else narrow.tobytes()
    return _HEADER.pack(MAGIC, width, values.size) + _compress(shuffled)


def decode_array(blob: bytes) -> np.ndarray:
    """The samples of `blob`: an int64 array (float64 for fractional nanoseconds)."""
    if blob is None or len(blob) < _HEADER.size:
        raise SampleCodecError("samples blob: too short to hold a header")
    magic, width, count = _HEADER.unpack_from(blob)
    if magic not in (MAGIC, FLOAT_MAGIC):
        raise SampleCodecError(f"samples blob: unknown format {bytes(magic)!r} (expected {MAGIC!r}); "
                               f"written by a newer harness?")
    dtype = dict(_WIDTHS).get(width)
    if dtype is None:
        raise SampleCodecError(f"samples blob: value width {width} is not one of 1, 2, 4, 8")
    try:
        raw = zlib.decompress(memoryview(blob)[_HEADER.size:])
    except zlib.error as exc:
        raise SampleCodecError(f"samples blob: corrupt compressed data ({exc})") from None
    if len(raw) != width * count:
        raise SampleCodecError(f"samples blob: holds {len(raw)} bytes, expected {count} values of {width} bytes")
    shuffled = np.frombuffer(raw, dtype=np.uint8)
    if magic == FLOAT_MAGIC:
        return shuffled.reshape(width, count).T.copy().view(np.float64).reshape(count)
    narrow = shuffled.reshape(width, count).T.copy().view(dtype).reshape(count) if width > 1 \
        else shuffled.view(dtype)
    zigzag = narrow.astype(np.uint64)
    deltas = ((zigzag >> np.uint64(1)) ^ (np.uint64(0) - (zigzag & np.uint64(1)))).view(np.int64)
    return np.cumsum(deltas, dtype=np.int64)  # wraps modulo 2^64, undoing the differences


def decode(blob: bytes) -> list:
    """The samples of `blob` as a list of Python ints (floats for fractional nanoseconds)."""
    return decode_array(blob).tolist()


def count(blob: bytes) -> int:
    """How many samples `blob` holds, without decompressing it."""
    return _HEADER.unpack_from(blob)[2]
