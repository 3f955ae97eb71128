"""Power through the whole flow: a device YAML naming a meter -> the suites -> the store
carries energy per inference -> the report draws the energy figures."""
import json
import sqlite3
import sys

import pytest

from paths import ROOT


SUITE = """\
def test_energy(measure):
    m = measure()
    assert m.energy["source"] == "tegrastats"
    assert m.energy["energy_per_inference_j"] > 0
"""


def test_meter_named_in_yaml_reaches_store_and_report(pytester, tmp_path):
    devices = tmp_path / "devices"
    devices.mkdir()
    fake = [sys.executable, str(ROOT / "tests" / "fakes" / "tegrastats"), "--watts", "5.0"]
    # Lines are stamped on arrival and a silence of 3 periods is a gap (then no energy per
    # inference is given): at 20 ms a loaded host's scheduling alone made one; 100 ms
    # tolerates a 0.3 s stall (the window grows to hold 20 samples: 2 s).
    (devices / "jetson.yaml").write_text(
        "kind: local\ncapabilities: {runtimes: [onnxruntime], power: [tegrastats]}\n"
        "settings: {min_iterations: 20, min_duration_s: 0.1, warmup: 1}\n"
        f"power:\n  - {{meter: tegrastats, interval_ms: 100, command: {json.dumps(fake)}}}\n")
    pytester.makepyfile(test_suite=SUITE)
    report = tmp_path / "r.html"
    result = pytester.runpytest_subprocess(
        "--devices-dir", str(devices), "--models-dir", str(ROOT / "models"), "--device", "jetson",
        "--variants", "digits-mlp/fp32", "--store", f"sqlite:///{tmp_path / 'h.sqlite'}",
        "--report", str(report), "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)
    [(energy, data)] = sqlite3.connect(tmp_path / "h.sqlite").execute(
        "select energy_per_inference_j, data from measurements where variant = 'fp32'").fetchall()
    stored = json.loads(data)["energy"]
    assert stored["avg_power_w"] == pytest.approx(5.0) and stored["meters"][0]["source"] == "tegrastats"
    assert energy == stored["energy_per_inference_j"] > 0
    page = report.read_text()
    assert "Accuracy vs energy per inference" in page and "Energy per inference per device" in page
