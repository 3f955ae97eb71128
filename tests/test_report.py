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
    assert page.count("<script type='text/javascript'>") == 1  # plotly.js inline, once
    for title in ("Accuracy vs latency", "Accuracy vs stored size", "Latency percentiles",
                  "Latency distribution", "Memory"):
        assert title in page
    table = page[page.index('id="measurements"'):]
    assert table.count("<tr>") == 1 + 8  # header + one row per measurement
    decisions = page[page.index("id='decisions'"):page.index("</table>", page.index("id='decisions'"))]
    assert decisions.count("<tr>") == 1 + 2  # header + one recommendation per device and model
    assert 'class="sortable"' in page


def test_front_points_in_the_latency_figure(tmp_path):
    store, run_id = make_store(tmp_path)
    df = measurements_frame(store.measurements(run_id))
    from harness.report import figures

    fig = figures.tradeoff_figure(df, "p50_ms", "median latency (ms)", "t")
    front = [t for t in fig.data if t.mode == "lines"][0]
    # int8 (fastest) and fp32 (most accurate at lower latency than fp16) are the front;
    # fp16 is dominated by fp32 (same accuracy, slower) and slow-bad by everything.
    assert len(front.x) == 2
    assert sorted(round(v, 1) for v in front.y) == [96.9, 97.5]


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

    calls = list(re.finditer(r'Plotly\.newPlot\(\s*"plot-\d+",\s*', page))
    for call in calls:
        data, end = decoder.raw_decode(page, call.end())
        layout, _ = decoder.raw_decode(page, re.compile(r",\s*").match(page, end).end())
        walk(data)
        walk(layout)
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
