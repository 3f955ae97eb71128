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
    # Each round's loop ran for its share of the minimum duration unless it hit the cap (a
    # runner that stops early, or a clock that runs slow, fails here). A microcontroller
    # plans its windows from the first inference's time instead (MLPerf Tiny), so its loop
    # (one with "windows") promises the count, not the duration.
    rounds = (m.provenance.get("timed_loop") or {}).get("rounds") or []
    planned = (m.provenance.get("campaign") or {}).get("rounds") or len(rounds)
    share_ns = int(float(m.settings.get("min_duration_s") or 0) / max(1, planned) * 1e9)
    for i, loop in enumerate(rounds):
        if loop.get("stop_reason") != "max_iterations" and "windows" not in loop:
            assert loop["wall_ns"] >= share_ns, f"round {i + 1} stopped before its share of the minimum duration"
    assert 0 < m.latency.min_ms <= m.latency.p50_ms <= m.latency.p99_ms <= m.latency.max_ms
    assert m.timings_ms.get("first_inference", 0) > 0
    # every round's window is in the result (the campaign ran them all)
    assert len(m.latency.rounds_p50_ms) == len(m.round_sizes) == m.latency.rounds
    assert m.validity.get("verdict") in ("valid", "invalid")
