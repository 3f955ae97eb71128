"""Controller-side serial meters through a pty peer: the generic stream and the LPM01A.

The peers send a number of lines when told to, their timestamps and signals counted on
their own sample clocks, and the meters stamp lines through an ArrivalClock: a test waits
for the lines it needs, so what a trace holds never depends on the machine's load.
"""
import pytest

from harness.power import MeterError, open_meters
from harness.power.energy import summarize
from harness.power.lpm01a import decode_value, encode_value
from harness.power.serial_stream import parse_header, parse_sample
from power_helpers import ArrivalClock, WallArrivalClock, recorded, record_released, spec_with
from serial_peers import Lpm01aPeer, StreamPeer

RATE = 500  # the stream peers' sample rate
# Seconds the LPM01A meter waits for each reply: it bounds a broken peer and is never
# waited out when the peer answers (only the silent peer's test sets a short one).
REPLY_PATIENCE_S = 20.0


def meter_for(entry, clock=None):
    (m,) = open_meters(spec_with([entry]), None, clock=clock)
    return m


def stream_meter(peer, clock):
    return meter_for({"meter": "serial_stream", "port": peer.path}, clock)


def lpm01a_meter(peer, clock, **options):
    return meter_for({"meter": "lpm01a", "port": peer.path, "timeout_s": REPLY_PATIENCE_S, **options}, clock)


def test_line_format_parsing():
    assert parse_sample("4294967295,5000.5,12.25") == (4294967295, 5000.5, 12.25)
    for bad in ("1,2", "x,1,2", "-5,1,2", "1,2,3,4"):
        with pytest.raises(ValueError):
            parse_sample(bad)
    assert parse_header("# harness-power-stream v1 rate_hz=1000 chip=ina219") == {
        "version": "v1", "rate_hz": "1000", "chip": "ina219"}


def test_stream_constant_power_is_aligned_and_integrated():
    clock = WallArrivalClock()  # real time: this test is about the machine's own clock
    with StreamPeer(lambda n: 2.5, rate=RATE) as peer:
        m = stream_meter(peer, clock)
        trace = record_released(m, clock, lambda: peer.emit(200, realtime=True))
    assert trace.nominal_rate_hz == RATE and trace.bad_lines == 0
    assert len(trace.t) == 200
    # Aligned onto the host clock with the smallest (arrival - MCU time): no sample leaves
    # the peer before its time (emitting began after start) and transport only delays, so
    # each lands between start and its own arrival (before stop), however late the load
    # made any line; no fixed latency is assumed.
    assert trace.started <= trace.t[0] and trace.t[-1] <= trace.stopped
    # ...at the MCU's spacing, not the arrivals' (which bunch on a busy host)
    assert trace.t[-1] - trace.t[0] == pytest.approx(199 / RATE, abs=1e-6)
    out = summarize(trace, trace.t[10], trace.t[-10], 100)
    assert out["avg_power_w"] == pytest.approx(2.5, rel=1e-4)
    assert out["coverage"] == pytest.approx(1.0)


def test_stream_step_signal_energy():
    clock = ArrivalClock(step=1 / RATE)
    with StreamPeer(lambda n: 1.0 if n < 250 else 3.0, rate=RATE) as peer:
        trace = record_released(stream_meter(peer, clock), clock, lambda: peer.emit(450))
    assert len(trace.t) == 450
    assert trace.watts[249] == pytest.approx(1.0) and trace.watts[250] == pytest.approx(3.0)
    a, b = trace.t[5], trace.t[-5]
    out = summarize(trace, a, b, 10)
    # Sample 250, the first at 3 W, is 250 periods after sample 0 on the MCU's clock; the
    # trapezoid ramps from sample 249 to it, as a step halfway between them would.
    step = trace.t[0] + 249.5 / RATE
    exact = 1.0 * (step - a) + 3.0 * (b - step)
    assert out["energy_j"] == pytest.approx(exact, rel=1e-6)


def test_stream_clock_wrap_and_garbage_lines_are_counted():
    clock = ArrivalClock(step=1 / RATE)
    # the MCU clock wraps after 100 samples; every 50th of the 350 is damaged
    with StreamPeer(lambda n: 1.0, rate=RATE, clock_us0=2 ** 32 - 200_000, garbage_every=50) as peer:
        trace = record_released(stream_meter(peer, clock), clock, lambda: peer.emit(350))
    assert trace.bad_lines == 7 and any("unparsable" in n for n in trace.notes)
    assert len(trace.t) == 350 - 7
    assert all(b > a for a, b in zip(trace.t, trace.t[1:]))  # the wrap did not fold time back
    assert trace.t[-1] - trace.t[0] == pytest.approx(348 / RATE, abs=1e-6)  # samples 0 .. 348
    assert not any("restart" in n for n in trace.notes)


def test_stream_that_dies_mid_window_records_the_gap():
    clock = ArrivalClock(step=1 / RATE)
    with StreamPeer(lambda n: 1.0, rate=RATE) as peer:
        def stream_then_die():
            clock.wait_for_readings(peer.emit(150))  # 0.3 s of samples
            clock.advance(0.5)                       # then the monitor is silent
        trace = recorded(stream_meter(peer, clock), stream_then_die)
    out = summarize(trace, trace.t[0], trace.stopped, 50)
    assert out["energy_per_inference_j"] is None
    assert out["coverage"] < 0.7
    assert out["gaps"] == [[pytest.approx(trace.t[-1], abs=1e-6), pytest.approx(trace.stopped, abs=1e-6)]]


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
    clock = ArrivalClock(step=0.001)
    with Lpm01aPeer(watts=0.012, event_after_s=0.1, realtime=False) as peer:
        with lpm01a_meter(peer, clock) as m:
            trace = record_released(m, clock, lambda: peer.release(600))
            second = record_released(m, clock, lambda: peer.release(300))  # configured once, started twice
        commands = list(peer.commands)
    assert commands[:9] == ["htc", "volt 3000m", "freq 1k", "acqtime 0", "output energy",
                            "format ascii_dec", "trigsrc sw", "eventsrc d7 fal", "pwr on"]
    assert commands.count("start") == 2 and commands.count("stop") == 2 and commands[-1] == "hrc"
    assert trace.bad_lines == 0 and len(trace.t) == 600
    assert len(trace.extra["events"]) == 1 and trace.extra["events"][0]["edge"] == "fal"
    out = summarize(trace, trace.t[20], trace.t[-20], 100)
    assert out["avg_power_w"] == pytest.approx(0.012, rel=1e-3)
    assert out["sample_rate_hz"] == pytest.approx(1000, rel=0.01)
    assert len(second.t) == 300 and len(second.extra["events"]) == 1  # a new acquisition


def test_lpm01a_damaged_lines_become_missing_samples():
    clock = ArrivalClock(step=0.001)
    with Lpm01aPeer(garbage_every=97, realtime=False) as peer:
        with lpm01a_meter(peer, clock) as m:
            trace = record_released(m, clock, lambda: peer.release(500))
    assert trace.bad_lines == 5  # samples 97, 194, ..., 485
    assert len(trace.watts) == 500
    assert sum(1 for w in trace.watts if w != w) == trace.bad_lines  # NaN per damaged line


def test_lpm01a_refusal_and_silence_are_clear_errors():
    with Lpm01aPeer(silent=True) as peer:
        # the one reply waited out: keep it short
        with meter_for({"meter": "lpm01a", "port": peer.path, "timeout_s": 0.3}) as m:
            with pytest.raises(MeterError, match="no ack for 'htc'.*3686400"):
                m.start()
    with Lpm01aPeer() as peer:
        peer.KNOWN = tuple(k for k in peer.KNOWN if k != "eventsrc")
        with lpm01a_meter(peer, None) as m:
            with pytest.raises(MeterError, match="refused 'eventsrc d7 fal': unknown command"):
                m.start()
        assert peer.commands[-1] == "hrc"  # closing after a failed start hands control back


def test_lpm01a_gpio_edges_give_the_mlperf_window():
    from harness.power.lpm01a import event_window

    clock = ArrivalClock(step=0.001)
    with Lpm01aPeer(watts=0.02, event_after_s=0.1, second_event_after_s=0.4, realtime=False) as peer:
        with lpm01a_meter(peer, clock) as m:
            trace = record_released(m, clock, lambda: peer.release(600))
    t0, t1 = event_window(trace)
    assert t1 - t0 == pytest.approx(0.3, abs=1e-6)  # 300 samples apart on the instrument's clock
    out = summarize(trace, t0, t1, 30)
    assert out["energy_per_inference_j"] == pytest.approx(0.02 * 0.3 / 30, rel=1e-4)
