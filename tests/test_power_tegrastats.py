"""tegrastats: every known line format, and the meter against the fake program.

The fake program is real (a process, a pipe, lines in the real format); the meter stamps
lines with an ArrivalClock, so a test waits for a number of lines instead of sleeping."""
import pytest

from harness.power import measure_with_meters, open_meters
from harness.power.energy import summarize
from harness.power.tegrastats import parse_line, total_mw
from power_helpers import ArrivalClock, VirtualClock, fake, record_lines, spec_with

LINES = {
    "nano": ("RAM 1234/3956MB (lfb 1x4MB) SWAP 0/1978MB (cached 0MB) CPU [5%@102,off,off,3%@102] "
             "EMC_FREQ 0% GR3D_FREQ 0% PLL@25C CPU@27.5C PMIC@100C GPU@26C AO@34.5C thermal@26.75C "
             "POM_5V_IN 933/933 POM_5V_GPU 0/0 POM_5V_CPU 84/84", 933, 3),
    "tx2": ("RAM 2046/7854MB (lfb 1200x4MB) CPU [0%@345,off,off,0%@345,0%@345,0%@345] EMC_FREQ 0%@1600 "
            "GR3D_FREQ 0%@114 APE 150 BCPU@36C MCPU@36C GPU@34C Tboard@32C Tdiode@35.25C "
            "VDD_IN 1038/1134 VDD_CPU 153/153 VDD_GPU 153/153 VDD_SOC 383/383 VDD_WIFI 0/0 VDD_DDR 229/229",
            1038, 6),
    "xavier": ("RAM 2345/31925MB (lfb 7028x4MB) SWAP 0/15962MB (cached 0MB) CPU [1%@1190,0%@1190] "
               "EMC_FREQ 0% GR3D_FREQ 0% AO@30C GPU@30.5C Tdiode@33.75C "
               "GPU 1155/1155 CPU 385/385 SOC 2504/2503 CV 0/0 VDDRQ 192/192 SYS5V 2692/2692",
               1155 + 385 + 2504 + 0 + 192 + 2692, 6),
    "orin-agx": ("11-22-2026 06:00:00 RAM 4722/30536MB (lfb 6015x4MB) SWAP 0/15268MB (cached 0MB) "
                 "CPU [1%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] VIC_FREQ 729 APE 174 "
                 "cpu@45.5C soc2@41.2C VDD_GPU_SOC 3188mW/3188mW VDD_CPU_CV 1195mW/1195mW "
                 "VIN_SYS_5V0 3229mW/3229mW VDDQ_VDD2_1V8AO 705mW/705mW", 3188 + 1195 + 3229 + 705, 4),
    "orin-nx": ("RAM 3015/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [3%@729,2%@729] "
                "GR3D_FREQ 0% cpu@48.5C soc2@45.8C tj@48.5C VDD_IN 5263mW/5263mW "
                "VDD_CPU_GPU_CV 717mW/717mW VDD_SOC 1794mW/1794mW", 5263, 3),
    "jp7": ("RAM 3015/7620MB (lfb 2x4MB) CPU [3%@729] tj@48.5C VDD_IN 5139mW/5139mW/5139mW "
            "VDD_CPU_GPU_CV 717mW/700mW/900mW VDD_SOC 1794mW/1794mW/1800mW", 5139, 3),
}


@pytest.mark.parametrize("model", sorted(LINES))
def test_every_known_line_format(model):
    text, total, n_rails = LINES[model]
    rails = parse_line(text)
    assert len(rails) == n_rails, rails
    assert "RAM" not in rails and "SWAP" not in rails
    assert total_mw(rails) == total


def test_jp7_uses_the_current_value_and_a_named_total():
    rails = parse_line(LINES["jp7"][0])
    assert rails["VDD_CPU_GPU_CV"] == 717
    assert total_mw(rails, total="VDD_SOC") == 1794
    assert total_mw({"A": 1, "B": 2}, include=["B"]) == 2


def tegrastats(clock, *args):
    spec = spec_with([{"meter": "tegrastats", "interval_ms": 20, "command": fake("tegrastats") + list(args)}])
    (m,) = open_meters(spec, None, clock=clock)
    return m


@pytest.mark.parametrize("model,watts", [("orin-nx", 5.0), ("xavier", 7.2), ("nano", 2.5)])
def test_meter_against_the_fake_program(model, watts):
    clock = ArrivalClock(step=0.02)
    trace = record_lines(tegrastats(clock, "--model", model, "--watts", str(watts)), clock, 8)
    assert len(trace.t) >= 8 and trace.bad_lines == 0
    assert all(w == pytest.approx(watts, abs=0.002) for w in trace.watts)
    out = summarize(trace, trace.t[1], trace.t[-2], 10)
    assert out["avg_power_w"] == pytest.approx(watts, abs=0.002)
    assert out["source"] == "tegrastats" and out["coverage"] == 1.0


def test_garbage_lines_are_counted_not_dropped_silently():
    clock = ArrivalClock()
    trace = record_lines(tegrastats(clock, "--garbage-every", "3", "--count", "9"), clock, 9)
    assert trace.bad_lines == 3 and len(trace.t) == 6
    assert sum("unparsable" in n for n in trace.notes) == 3


def test_a_program_that_dies_mid_window_leaves_a_gap():
    clock = ArrivalClock(step=0.02)
    m = tegrastats(clock, "--die-after", "5")
    t0 = clock.time()
    trace = record_lines(m, clock, 5 + 1)  # five lines, then the end of the stream
    # Stamps: started t0+.02, lines .04-.12, the stream's end .14, stopped .16.
    assert len(trace.t) == 5
    assert any("ended" in n for n in trace.notes)
    assert [(a - t0, b - t0) for a, b in trace.gaps] == [(pytest.approx(0.14, abs=1e-6),
                                                           pytest.approx(0.16, abs=1e-6))]
    out = summarize(trace, trace.t[0], trace.stopped, 100)
    assert out["energy_per_inference_j"] is None and out["gaps"] and out["meter_gaps"]
    assert out["coverage"] == pytest.approx(0.08 / 0.12, abs=1e-5)


def test_measure_with_meters_runs_idle_then_window(tmp_path):
    # A polling meter on a virtual clock: the idle baseline and the window last exactly
    # what they say, and every 10 ms of them holds a reading.
    hw = tmp_path / "sys/class/hwmon/hwmon1"
    hw.mkdir(parents=True)
    for name, text in (("name", "ina226"), ("in1_input", "5000"), ("curr1_input", "800"),
                       ("power1_input", "4000000")):
        (hw / name).write_text(text + "\n")
    clock = VirtualClock()
    meters = open_meters(spec_with([{"meter": "ina2xx", "interval_ms": 10, "root": str(tmp_path)}]), None,
                         clock=clock)
    marks = {}

    def run():
        clock.advance(0.155)
        start = clock.time()
        clock.advance(0.5)
        marks["window"] = (start, clock.time())
        return {"window": {"start_unix_s": start, "end_unix_s": clock.time()}, "loop": {"iterations": 50}}

    t_idle = clock.time()
    raw, (energy,) = measure_with_meters(meters, run, idle_s=0.4)
    assert marks["window"][0] - t_idle == pytest.approx(0.4 + 0.155, abs=1e-6)  # idle came first
    assert raw["loop"]["iterations"] == 50
    # reads at 10 ms steps from the window's start + 5 ms, and the one at stop, on its end
    assert energy["n_samples"] == 50 + 1 and energy["coverage"] == pytest.approx(1.0)
    assert energy["avg_power_w"] == pytest.approx(4.0)
    assert energy["idle_power_w"] == pytest.approx(4.0)
    assert energy["energy_per_inference_j"] == pytest.approx(4.0 * 0.5 / 50, rel=1e-5)
    assert energy["net_energy_per_inference_j"] == pytest.approx(0.0, abs=1e-6)


def test_missing_program_is_a_clear_error():
    from harness.power import MeterError

    spec = spec_with([{"meter": "tegrastats", "command": ["/nonexistent/tegrastats"]}])
    (m,) = open_meters(spec, None)
    with pytest.raises(MeterError, match="tegrastats"):
        m.start()
