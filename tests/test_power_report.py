"""The energy figures of the report, from a plain DataFrame."""
import math

import pandas as pd

from harness.report.energy import energy_figures


def frame():
    rows = [
        ("jetson", "mnist", "fp32", 0.99, 2.0e-3, 1.5e-3),
        ("jetson", "mnist", "fp16", 0.99, 1.2e-3, 0.8e-3),
        ("jetson", "mnist", "int8", 0.97, 0.5e-3, 0.3e-3),
        ("jetson", "mnist", "bad", 0.90, 3.0e-3, math.nan),  # dominated
        ("rpi5", "mnist", "fp32", 0.99, 9.0e-3, math.nan),
        ("rpi5", "mnist", "<script>", 0.95, math.nan, math.nan),  # no energy: left out
    ]
    return pd.DataFrame(rows, columns=["device", "model", "variant", "accuracy",
                                       "energy_per_inference_j", "net_energy_per_inference_j"])


def test_pareto_and_bar_figures():
    pareto, bars = energy_figures(frame())
    jetson = next(t for t in pareto.data if t.name == "jetson · mnist")
    assert list(jetson.marker.symbol) == ["diamond", "diamond", "circle", "circle"]
    assert list(jetson.text) == ["int8", "fp16", "fp32", "bad"]   # every point labelled
    front = next(t for t in pareto.data if t.name == "Pareto front · jetson · mnist")
    # mJ, a step through int8 and fp16; fp32 ties fp16's accuracy at more energy
    assert front.line.shape == "hv" and list(front.x)[:3] == [0.5, 0.5, 1.2] and list(front.y)[1:3] == [97.0, 99.0]
    names = [t.name for t in bars.data]
    assert "int8 (gross)" in names and "int8 (net of idle)" in names
    assert not any("<script>" in (t.name or "") for t in bars.data + pareto.data)


def test_no_energy_no_figures():
    df = frame().assign(energy_per_inference_j=math.nan)
    assert energy_figures(df) == []


def test_names_are_escaped_in_traces_and_hover_text():
    evil = '<img src=x onerror="alert(1)">'
    df = pd.DataFrame([("jetson" + evil, "m" + evil, "v" + evil, 0.95, 1e-3, 0.5e-3)],
                      columns=["device", "model", "variant", "accuracy",
                               "energy_per_inference_j", "net_energy_per_inference_j"])
    pareto, bars = energy_figures(df)
    text = (pareto.to_json() + bars.to_json()).replace("\\u003c", "<").replace("\\u003e", ">")
    assert evil not in text and "<img" not in text
    assert "&lt;img" in text
