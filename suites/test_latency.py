"""Latency of every variant on the device: MLPerf LoadGen's stopping rule, percentiles."""


def test_latency(measure, device_spec):
    m = measure()
    settings = device_spec.settings
    # The timed loop stops only when both the minimum count and the minimum duration are
    # reached (or at the iteration cap): fewer inferences means the device cut the run short.
    # A microcontroller reports one sample per MLPerf Tiny window (elapsed / N), so count
    # the inferences of the timed loop, not the samples.
    iterations = (m.provenance.get("timed_loop") or {}).get("iterations", m.latency.n)
    assert iterations >= min(settings["min_iterations"], settings["max_iterations"])
    assert m.latency.n == len(m.samples_ns) == sum(m.round_sizes)
    assert 0 < m.latency.min_ms <= m.latency.p50_ms <= m.latency.p99_ms <= m.latency.max_ms
    assert m.latency.median_ci_low_ms <= m.latency.p50_ms <= m.latency.median_ci_high_ms
    assert m.timings_ms.get("first_inference", 0) > 0
    # every round's window is in the result (the campaign ran them all)
    assert len(m.latency.rounds_p50_ms) == len(m.round_sizes) == m.latency.rounds
    assert m.validity.get("verdict") in ("valid", "invalid")
