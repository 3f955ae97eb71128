"""The HTML report: offline, escaped, the Pareto front right."""
import json
import re
from html.parser import HTMLParser

from harness.frame import measurements_frame
from harness.report import write_report
from harness.report.pareto import pareto_mask
from harness.store import Store
from fake_measurements import fake_measurement

EVIL = '<img src=x onerror="alert(1)">'


def test_pareto_mask():
    # cost (latency), gain (accuracy)
    cost = [1.0, 2.0, 3.0, 2.5, 1.0, None]
    gain = [0.90, 0.95, 0.96, 0.94, 0.89, 0.99]
    assert pareto_mask(cost, gain) == [True, True, True, False, False, False]
    assert pareto_mask([1.0, 1.0], [0.9, 0.9]) == [True, True]  # ties dominate nobody
    assert pareto_mask([], []) == []


def make_store(tmp_path, devices=("local",)):
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    run_id = store.start_run()
    specs = [("fp32", 1.0, 0.975, 5705), ("fp16", 1.2, 0.975, 4622), ("int8", 0.7, 0.969, 6184),
             ("slow-bad", 2.0, 0.90, 9000)]
    for device in devices:
        for seed, (variant, ms, acc, size) in enumerate(specs):
            store.save(fake_measurement(device=device, variant=variant, median_ms=ms, accuracy=acc,
                                        size_bytes=size, run_id=run_id, seed=seed))
    return store, run_id


def test_report_renders_offline_with_every_part(tmp_path):
    store, run_id = make_store(tmp_path, devices=("local", "qemu-m3"))
    page = write_report(store, tmp_path / "r.html", run_id=run_id).read_text()
    # No external script or stylesheet: a lab machine and CI have no internet.
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=[\"']?https?:", page)
    assert page.count("id='plotly-gz'") == 1  # plotly.js inline, once
    for title in ("Accuracy vs median latency", "Accuracy vs stored size", "Latency percentiles",
                  "Latency distribution", "the model's own growth beside the process peak"):
        assert title in page
    table = page[page.index('id="measurements"'):page.index("</table>", page.index('id="measurements"'))]
    assert table.count("<tr") == 1 + 8  # header + one row per measurement
    decisions = page[page.index("id='decisions'"):page.index("</table>", page.index("id='decisions'"))]
    assert decisions.count("<tr class='decision'") == 2  # one recommendation per device and model
    assert 'class="sortable"' in page


def test_front_points_in_the_latency_figure(tmp_path):
    store, run_id = make_store(tmp_path)
    df = measurements_frame(store.measurements(run_id))
    from harness.report import figures

    fig = figures.tradeoff_figure(df, "p50_ms", "median latency (ms)", "t")
    front = [t for t in fig.data if t.mode == "lines"][0]
    points = [t for t in fig.data if t.mode == "markers+text"][0]
    # int8 (fastest) and fp32 (most accurate at lower latency than fp16) are the front;
    # fp16 is dominated by fp32 (same accuracy, slower) and slow-bad by everything.
    assert [s for s, t in zip(points.marker.symbol, points.text) if s == "diamond"] == ["diamond"] * 2
    assert {t for s, t in zip(points.marker.symbol, points.text) if s == "diamond"} == {"int8", "fp32"}
    # a step: up from below int8, across to fp32's cost, up to fp32, across to the slowest cost
    assert front.line.shape == "hv"
    assert [round(v, 1) for v in front.y] == [round(96.9 - 0.25, 1), 96.9, 97.5, 97.5]
    assert front.x[1] == front.x[0] and front.x[-1] == max(points.x)


class Parsed(HTMLParser):
    """Tags, attributes and text as a browser's parser sees them (script bodies apart)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self._script = [], [], False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._script = tag == "script"

    def handle_endtag(self, tag):
        self._script = self._script and tag != "script"

    def handle_data(self, data):
        if not self._script:
            self.text.append(data)


def figure_strings(page):
    """Every string of every figure's data and layout, JSON-decoded (plotly writes '<' as
    \\u003c, so only the decoded text says what the browser will render)."""
    decoder, out = json.JSONDecoder(), []

    def walk(value):
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    calls = list(re.finditer(r"<script type='application/json' class='plot-spec' data-div='plot-\d+'>", page))
    for call in calls:
        spec, _ = decoder.raw_decode(page, call.end())
        walk(spec["data"])
        walk(spec["layout"])
    return calls, out


def test_every_name_is_escaped(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    run_id = store.start_run()
    store.save(fake_measurement(device=EVIL, model=f"m{EVIL}", variant=f"v{EVIL}", run_id=run_id))
    page = write_report(store, tmp_path / "r.html", run_id=run_id).read_text()
    parsed = Parsed(page)
    # The page's own markup: the names are text, never an element or an attribute.
    assert not [tag for tag, _ in parsed.tags if tag == "img"]
    assert not [name for _, attrs in parsed.tags for name in attrs if name.startswith("on")]
    assert any(EVIL in text for text in parsed.text)  # shown as the literal name
    for _, attrs in parsed.tags:  # a quoted attribute holds the whole name, never a piece
        assert all(EVIL in v for v in attrs.values() if v and "img" in v), attrs
    # Inside the figures plotly renders hover texts, names and titles as HTML: decoded, they
    # hold the name as escaped text, so rendering them shows it and creates no element.
    calls, strings = figure_strings(page)
    assert len(calls) >= 4
    named = [s for s in strings if "img" in s]
    assert named, "the figures do not carry the names at all"
    for s in named:
        inner = Parsed(s)
        assert not [tag for tag, _ in inner.tags if tag == "img"], s
        assert EVIL in "".join(inner.text), s


def test_emulated_devices_are_labelled(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    run_id = store.start_run()
    store.save(fake_measurement(device="qemu-m3", run_id=run_id, emulated=True))
    arm = fake_measurement(device="arm64-qemu-user", run_id=run_id, emulated=True)
    arm.provenance["device"] = {"emulation": "wall-clock"}
    store.save(arm)
    page = write_report(store, tmp_path / "r.html", run_id=run_id).read_text()
    assert "Emulated devices (instruction-counted guest time" in page and "qemu-m3 (emulated)" in page
    assert "wall-clock time of an emulated CPU" in page and "arm64-qemu-user" in page


def test_empty_store_is_a_clear_error(tmp_path):
    import pytest

    from harness.errors import HarnessError

    store = Store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    with pytest.raises(HarnessError, match="no measurements"):
        write_report(store, tmp_path / "r.html")


def test_log_ticks_are_one_two_five_and_never_fewer_than_three():
    from harness.report.axes import log_ticks, time_unit

    ticks = log_ticks([5.5, 8.9])   # plotly's own ticks here: "6 7 8 9"
    assert ticks["tickvals"] == [5.0, 10.0, 20.0] and ticks["ticktext"] == ["5", "10", "20"]
    assert log_ticks([0.0012, 0.3])["ticktext"] == ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1",
                                                      "0.2", "0.5"]
    wide = log_ticks([0.0006, 3000])["ticktext"]      # many decades: powers of ten
    assert wide == ["0.0005", "0.001", "0.01", "0.1", "1", "10", "100", "1k", "5k"]
    assert log_ticks([]) is None and log_ticks([0, None]) is None
    assert time_unit([0.004, 0.006]) == ("µs", 1e3) and time_unit([2.0]) == ("ms", 1.0)


def test_a_one_point_front_is_a_visible_corner_and_fronts_are_steps():
    from harness.report.figures import step_front

    x, y = step_front([2.0], [97.0], (2.0, 2.0), log_x=True)
    assert len(x) == 3 and x[0] == x[1] == 2.0 and x[2] > 2.0 and y[0] < y[1] == y[2] == 97.0
    # a point that adds no accuracy at a higher cost does not raise the step
    x, y = step_front([1.0, 3.0, 2.0], [96.0, 96.5, 97.0], (1.0, 5.0), log_x=False)
    assert list(zip(x, y))[1:] == [(1.0, 96.0), (2.0, 97.0), (5.0, 97.0)]


def test_the_vendored_plotly_bundle_matches_the_python_package():
    from plotly.offline import get_plotlyjs_version

    from harness.report import plotlyjs

    # the figures' JSON is plotly.py's: the bundle drawing it must be the same plotly.js
    assert plotlyjs.version() == get_plotlyjs_version(), "run scripts/vendor_plotly"
    assert plotlyjs.LICENSE.read_text().startswith("MIT License")


def test_cli_report_assets_are_written_once_beside_many_reports(tmp_path, capsys):
    from harness.cli import main

    store, run_id = make_store(tmp_path)
    store.engine.dispose()
    (tmp_path / "h.sqlite").rename(tmp_path / "harness.sqlite")
    assets = tmp_path / "site" / "assets"
    for name in ("a.html", "b.html"):
        assert main(["report", str(tmp_path), "--out", str(tmp_path / "site" / name),
                     "--report-assets", str(assets)]) == 0
    [bundle] = [p for p in assets.iterdir() if p.name.startswith("plotly-cartesian-")]
    assert (assets / "LICENSE-plotly.js").is_file() and bundle.stat().st_size > 1_000_000
    for name in ("a.html", "b.html"):
        page = (tmp_path / "site" / name).read_text()
        assert f'<script src="assets/{bundle.name}"></script>' in page and "id='plotly-gz'" not in page
        assert len(page) < 200_000


def test_the_table_shows_the_deciding_columns_and_leaves_out_empty_ones(tmp_path):
    from harness.report.table import table_html

    store, run_id = make_store(tmp_path)
    ms = store.measurements(run_id)
    ms[1].memory.load_growth_kb = None
    ms[1].memory.ram_bytes = 24_000          # an MCU's memory is its RAM
    ms[2].validity = {"verdict": "invalid", "reasons": ["round 2: contention"]}
    html_text = table_html(measurements_frame(ms), ms, "ms", 1.0)
    heads = re.findall(r"<th class='col-([a-z_0-9]+)'>", html_text)
    assert heads[:9] == ["device", "variant", "p50", "p90", "speed", "accuracy_change", "stored", "memory",
                         "verdict"]
    assert "energy" not in heads                               # no measurement has energy: no column
    assert {"first", "ram", "deployed", "technique"} <= set(heads)   # behind the toggle
    toggles = re.findall(r"<input type='checkbox' value='([a-z_0-9]+)'>", html_text)
    assert set(toggles) == set(heads[9:])
    assert "#measurements .col-first { display: none; }" in html_text
    assert "23.4 KB RAM" in html_text and "title='round 2: contention'" in html_text
    body = html_text[html_text.index("<tbody>"):]
    variants = re.findall(r"col-variant' data-v=\"[^\"]*\">([^<]+)<", body)
    assert variants == ["digits-cnn/int8", "digits-cnn/fp32", "digits-cnn/fp16", "digits-cnn/slow-bad"]  # fastest first


def test_a_history_report_gives_each_run_its_own_bar_and_box(tmp_path):
    from harness.report import build_figures

    store, first = make_store(tmp_path)
    second = store.start_run()
    for seed, variant in enumerate(("fp32", "int8")):
        store.save(fake_measurement(variant=variant, median_ms=0.8, run_id=second, seed=seed))
    ms = store.measurements(None)
    figs = build_figures(ms, measurements_frame(ms))
    percentiles = next(f for f in figs if f.layout.title.text.startswith("Latency percentiles"))
    boxes = next(f for f in figs if f.layout.title.text.startswith("Latency distribution"))
    assert len(set(percentiles.data[0].x)) == len(ms) == 6
    assert len({t.name for t in boxes.data}) == len(ms)
    assert any(f"run {second[:6]}" in x for x in percentiles.data[0].x)
