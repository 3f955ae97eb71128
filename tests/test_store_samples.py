"""The sample codec: every int64 series round-trips exactly, and the blob is compact."""
import zlib

import numpy as np
import pytest

from harness import samples

INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1


def round_trip(values):
    blob = samples.encode(values)
    back = samples.decode(blob)
    assert back == [int(v) for v in values]
    assert all(type(v) is int for v in back)
    assert samples.count(blob) == len(back)
    return blob


@pytest.mark.parametrize("seed", range(5))
def test_random_series_round_trip(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30000))
    spread = float(rng.choice([1e2, 1e5, 1e9, 1e15]))
    round_trip((rng.random(n) * spread).astype(np.int64).tolist())
    round_trip(rng.integers(INT64_MIN, INT64_MAX, n, dtype=np.int64, endpoint=True).tolist())


def test_constant_empty_and_single():
    assert len(round_trip([123456] * 5000)) < 100
    blob = round_trip([])
    assert samples.decode_array(blob).dtype == np.int64
    round_trip([0])
    round_trip([INT64_MAX])


def test_huge_values_and_wrapping_differences():
    # differences between these overflow int64: they must wrap and unwrap exactly
    values = [INT64_MAX, INT64_MIN, 0, INT64_MAX, -1, INT64_MIN, 1, 12 * 10 ** 9, 3 * 10 ** 18]
    round_trip(values)
    round_trip(values[::-1])
    round_trip([10 ** 12 + i for i in range(1000)])  # ~17 minutes per inference, steady


def test_inputs_the_store_may_see():
    arr = np.arange(0, 10 ** 6, 7, dtype=np.int64)
    assert samples.decode(samples.encode(arr)) == arr.tolist()
    assert samples.decode(samples.encode(np.array([5, 6], dtype=np.uint64))) == [5, 6]
    assert samples.decode(samples.encode([1.0, 2e9])) == [1, 2000000000]  # integral floats


def test_fractional_nanoseconds_are_kept_exactly():
    # a serial board's per-inference time is a window's microseconds / its count
    values = [1234.5 * 1000 / 7, 2e9 / 3, 0.25, 17.0]
    blob = samples.encode(values)
    assert blob[:3] == samples.FLOAT_MAGIC and samples.decode(blob) == values
    assert samples.count(blob) == 4


@pytest.mark.parametrize("bad, words", [
    ([2 ** 63], "within int64|exceeds int64|integer nanoseconds"),
    ([[1, 2], [3, 4]], "flat list"),
    (["12"], "integer nanoseconds"),
    ([float("nan")], "integer nanoseconds"),
])
def test_samples_that_would_not_round_trip_are_refused(bad, words):
    with pytest.raises(samples.SampleCodecError, match=words):
        samples.encode(bad)


def test_corrupt_blobs_are_named():
    good = samples.encode(list(range(100)))
    with pytest.raises(samples.SampleCodecError, match="too short"):
        samples.decode(b"HS")
    with pytest.raises(samples.SampleCodecError, match="unknown format"):
        samples.decode(b"XX9" + good[3:])
    with pytest.raises(samples.SampleCodecError, match="corrupt"):
        samples.decode(good[:-5])
    header = good[:12]
    with pytest.raises(samples.SampleCodecError, match="expected 101 values"):
        samples.decode(header[:4] + (101).to_bytes(8, "little") + good[12:])


def test_latency_samples_are_compact():
    rng = np.random.default_rng(7)
    noisy = (1e6 * rng.lognormal(0.0, 0.1, 20000)).astype(np.int64)  # 1 ms +- 10 %
    blob = samples.encode(noisy)
    assert len(blob) / noisy.size < 3.0           # JSON text takes ~8.5 bytes per sample
    assert len(blob) < len(zlib.compress(noisy.tobytes(), 1))  # better than plain zlib of the int64s


def test_a_serial_boards_fractional_samples_survive_the_store(tmp_path):
    from harness.store import Store
    from fake_measurements import fake_measurement

    store = Store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    m = fake_measurement(n=5)
    m.samples_ns = [w * 1000.0 / 7 for w in (123457, 123461, 123449, 123470, 123452)]  # us per window / n
    store.save(m)
    [back] = store.measurements()
    assert back.samples_ns == m.samples_ns
    store.close()
