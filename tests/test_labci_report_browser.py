"""The report in a real headless Chromium: it loads with no console errors, the Pareto plot
holds the expected points, trends and regressions show; CI keeps a screenshot
(reports/ci/, git-ignored). Static figures through kaleido."""
import json
from pathlib import Path

import pytest

from harness.compare import compare_runs, parse_gates
from harness.report import write_report, write_static
from harness.store import Store
from paths import ROOT
from labci_cdp import chromium, chromium_path
from fake_measurements import fake_measurement

# (variant, median latency ms, top-1 accuracy): fp32 and int8 are on the front, fp16 is not
POINTS = [("fp32", 2.0, 0.975), ("fp16", 2.5, 0.970), ("int8", 1.0, 0.960)]


@pytest.fixture
def report(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    base = store.start_run(tag="base")
    for i, (variant, ms, acc) in enumerate(POINTS):
        store.save(fake_measurement(device="rpi<5>", variant=variant, median_ms=ms * 1.2, accuracy=acc,
                                    seed=i, run_id=base, rounds=3))
    store.finish_run(base)
    new = store.start_run(tag="nightly")
    for i, (variant, ms, acc) in enumerate(POINTS):
        store.save(fake_measurement(device="rpi<5>", variant=variant, median_ms=ms, accuracy=acc,
                                    seed=10 + i, run_id=new, rounds=3))
    store.finish_run(new)
    gates = parse_gates(["p50:5%"])
    # judge the old run against the new one, so there is a regression to show
    store.save_comparison(compare_runs(store.measurements(run_id=new), store.measurements(run_id=base),
                                       gates, new, base), gates)
    path = write_report(store, tmp_path / "report.html", run_id=None)
    return store, path


def test_report_html_has_trends_regressions_and_escapes(report):
    _, path = report
    text = path.read_text()
    assert "Trend: median latency" in text and "id='regressions'" in text
    assert "rpi&lt;5&gt;" in text and "rpi<5>" not in text
    assert '<script src="https://cdn' not in text  # plotly.js is inline: the page opens offline


@pytest.fixture
def browser():
    with chromium() as b:
        yield b


def test_report_in_headless_chromium(report, browser):
    _, path = report
    browser.open(path)
    assert browser.evaluate("document.readyState") == "complete"
    # plotly.js is inlined gzip-compressed: the page unpacks it, then draws
    assert browser.evaluate("window.reportReady.then(() => 'drawn', e => e.message)") == "drawn"
    assert browser.evaluate("typeof Plotly") == "object"
    traces = json.loads(browser.evaluate("""JSON.stringify(document.getElementById('plot-0')._fullData.map(
        t => ({name: t.name, mode: t.mode, x: Array.from(t.x || []), y: Array.from(t.y || []),
               symbol: t.marker ? t.marker.symbol : null})))"""))
    markers = [t for t in traces if t["mode"] == "markers+text"]
    fronts = [t for t in traces if t["mode"] == "lines"]
    # one device and model, both runs: 6 points
    assert len(markers) == 1 and len(markers[0]["x"]) == 2 * len(POINTS)
    got = sorted(zip((round(x, 1) for x in markers[0]["x"]), (round(y, 1) for y in markers[0]["y"])))
    expected = sorted([(round(ms, 1), round(100 * acc, 1)) for _, ms, acc in POINTS]
                      + [(round(1.2 * ms, 1), round(100 * acc, 1)) for _, ms, acc in POINTS])
    assert got == expected
    assert "rpi&lt;5&gt;" in markers[0]["name"]
    # each run's front (a variant competes with the siblings measured in its own campaign):
    # fp32 and int8 of both runs (diamonds); fp16 is slower than fp32 and less accurate in each
    on_front = sorted((round(x, 1), round(y, 1)) for x, y, s in zip(markers[0]["x"], markers[0]["y"],
                                                                     markers[0]["symbol"]) if s == "diamond")
    assert on_front == [(1.0, 96.0), (1.2, 96.0), (2.0, 97.5), (2.4, 97.5)]
    # drawn as a step through the front points: the best accuracy reached at each latency
    step = list(zip((round(x, 1) for x in fronts[0]["x"]), (round(y, 1) for y in fronts[0]["y"])))
    assert step[1:3] == [(1.0, 96.0), (2.0, 97.5)] and step[0][0] == 1.0 and step[-1][1] == 97.5
    # every figure drew (an SVG per plot), the trend is there, the regression row is shown
    n_plots = browser.evaluate("document.querySelectorAll('.js-plotly-plot').length")
    assert n_plots >= 6
    assert browser.evaluate("document.querySelectorAll('.js-plotly-plot .main-svg').length") >= 2 * n_plots
    assert browser.evaluate("document.querySelectorAll('tr.regression').length") == 3
    out = ROOT / "reports" / "ci"
    out.mkdir(parents=True, exist_ok=True)
    browser.send("Emulation.setDeviceMetricsOverride", width=1400, height=2000, deviceScaleFactor=1, mobile=False)
    browser.screenshot(out / "report.png")
    assert (out / "report.png").stat().st_size > 10000
    assert browser.console_errors() == []


def test_static_figures_through_kaleido(report, tmp_path):
    pytest.importorskip("kaleido", reason="kaleido not installed: pip install kaleido")
    if chromium_path() is None:
        pytest.skip("kaleido 1.x needs Chromium: apt-get install chromium")
    store, _ = report
    paths = write_static(store, tmp_path / "figures", "svg")
    assert len(paths) >= 6 and all(p.read_text().lstrip().startswith("<svg") for p in paths)
    [png] = write_static(store, tmp_path / "png", "png")[:1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
