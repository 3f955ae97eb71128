"""Controller-side serial meters through a pty peer: the generic stream and the LPM01A."""
import time

import pytest

from harness.power import MeterError, open_meters
from harness.power.energy import summarize
from harness.power.lpm01a import decode_value, encode_value
from harness.power.serial_stream import parse_header, parse_sample
from power_helpers import record, spec_with
from serial_peers import Lpm01aPeer, StreamPeer


def meter_for(entry):
    (m,) = open_meters(spec_with([entry]), None)
    return m


def test_line_format_parsing():
    assert parse_sample("4294967295,5000.5,12.25") == (4294967295, 5000.5, 12.25)
    for bad in ("1,2", "x,1,2", "-5,1,2", "1,2,3,4"):
        with pytest.raises(ValueError):
            parse_sample(bad)
    assert parse_header("# harness-power-stream v1 rate_hz=1000 chip=ina219") == {
        "version": "v1", "rate_hz": "1000", "chip": "ina219"}


def test_stream_constant_power_is_aligned_and_integrated():
    with StreamPeer(lambda t: 2.5, rate=500) as peer:
        m = meter_for({"meter": "serial_stream", "port": peer.path})
        trace = record(m, 0.8)
    assert trace.nominal_rate_hz == 500 and trace.bad_lines == 0
    assert len(trace.t) > 100
    # Aligned onto the host clock: inside the recording, within the transport latency.
    assert trace.started - 0.5 < trace.t[0] and trace.t[-1] <= trace.stopped + 1e-6
    out = summarize(trace, trace.t[10], trace.t[-10], 100)
    assert out["avg_power_w"] == pytest.approx(2.5, rel=1e-4)
    assert out["coverage"] == pytest.approx(1.0)


def test_stream_step_signal_energy():
    t_step = time.time() + 0.4
    with StreamPeer(lambda t: 1.0 if t < t_step else 3.0, rate=500) as peer:
        m = meter_for({"meter": "serial_stream", "port": peer.path})
        trace = record(m, 0.9)
    a, b = trace.t[5], trace.t[-5]
    out = summarize(trace, a, b, 10)
    # The step's position on the host clock is known to within the alignment (a few ms).
    step = next(t for t, w in zip(trace.t, trace.watts) if w > 2)
    exact = 1.0 * (step - a) + 3.0 * (b - step)
    assert out["energy_j"] == pytest.approx(exact, abs=2.0 * 2 / 500 + 1e-6)


def test_stream_clock_wrap_and_garbage_lines_are_counted():
    with StreamPeer(lambda t: 1.0, rate=500, clock_us0=2 ** 32 - 200_000, garbage_every=50) as peer:
        m = meter_for({"meter": "serial_stream", "port": peer.path})
        trace = record(m, 0.7)
    assert trace.bad_lines >= 3 and any("unparsable" in n for n in trace.notes)
    assert all(b > a for a, b in zip(trace.t, trace.t[1:]))  # the wrap did not fold time back
    assert not any("restart" in n for n in trace.notes)


def test_stream_that_dies_mid_window_records_the_gap():
    with StreamPeer(lambda t: 1.0, rate=500, die_after_s=0.3) as peer:
        m = meter_for({"meter": "serial_stream", "port": peer.path})
        trace = record(m, 0.8)
    out = summarize(trace, trace.t[0], trace.stopped, 50)
    assert out["energy_per_inference_j"] is None
    assert out["coverage"] < 0.7 and out["gaps"]


def test_missing_port_is_a_clear_error():
    m = meter_for({"meter": "serial_stream", "port": "/dev/does-not-exist-42"})
    with pytest.raises(MeterError, match="cannot open serial port"):
        m.start()


def test_lpm01a_value_codec():
    assert decode_value("6409-07") == pytest.approx(640.9e-6)
    assert decode_value(encode_value(1.234e-5)) == pytest.approx(1.234e-5, rel=1e-3)
    with pytest.raises(ValueError):
        decode_value("64a9-07")


def test_lpm01a_session_energy_and_events():
    with Lpm01aPeer(watts=0.012, event_after_s=0.1) as peer:
        m = meter_for({"meter": "lpm01a", "port": peer.path, "timeout_s": 2.0})
        try:
            trace = record(m, 0.6)
            second = record(m, 0.3)  # configured once, started twice
        finally:
            m.close()
        commands = list(peer.commands)
    assert commands[:9] == ["htc", "volt 3000m", "freq 1k", "acqtime 0", "output energy",
                            "format ascii_dec", "trigsrc sw", "eventsrc d7 fal", "pwr on"]
    assert commands.count("start") == 2 and commands.count("stop") == 2 and commands[-1] == "hrc"
    assert trace.bad_lines == 0 and len(trace.t) > 300
    assert len(trace.extra["events"]) == 1 and trace.extra["events"][0]["edge"] == "fal"
    out = summarize(trace, trace.t[20], trace.t[-20], 100)
    assert out["avg_power_w"] == pytest.approx(0.012, rel=1e-3)
    assert out["sample_rate_hz"] == pytest.approx(1000, rel=0.01)
    assert len(second.t) > 100


def test_lpm01a_damaged_lines_become_missing_samples():
    with Lpm01aPeer(garbage_every=97) as peer:
        m = meter_for({"meter": "lpm01a", "port": peer.path, "timeout_s": 2.0})
        try:
            trace = record(m, 0.5)
        finally:
            m.close()
    assert trace.bad_lines >= 3
    assert sum(1 for w in trace.watts if w != w) == trace.bad_lines  # NaN per damaged line


def test_lpm01a_refusal_and_silence_are_clear_errors():
    with Lpm01aPeer(silent=True) as peer:
        m = meter_for({"meter": "lpm01a", "port": peer.path, "timeout_s": 0.3})
        with pytest.raises(MeterError, match="no ack for 'htc'.*3686400"):
            m.start()
        m._reader.close()
    with Lpm01aPeer() as peer:
        peer.KNOWN = tuple(k for k in peer.KNOWN if k != "eventsrc")
        m = meter_for({"meter": "lpm01a", "port": peer.path, "timeout_s": 1.0})
        with pytest.raises(MeterError, match="refused 'eventsrc d7 fal': unknown command"):
            m.start()
        m._reader.close()


def test_lpm01a_gpio_edges_give_the_mlperf_window():
    from harness.power.lpm01a import event_window

    with Lpm01aPeer(watts=0.02, event_after_s=0.1, second_event_after_s=0.4) as peer:
        m = meter_for({"meter": "lpm01a", "port": peer.path, "timeout_s": 2.0})
        try:
            trace = record(m, 0.6)
        finally:
            m.close()
    t0, t1 = event_window(trace)
    assert t1 - t0 == pytest.approx(0.3, abs=0.003)  # on the instrument's sample clock
    out = summarize(trace, t0, t1, 30)
    assert out["energy_per_inference_j"] == pytest.approx(0.02 * 0.3 / 30, rel=0.02)
