"""The search's page in a real headless Chromium: it loads with no console errors, the found
front and the hand-written variants are drawn where they belong, names are escaped."""
import json

import pytest

from harness.search.cli import SearchOutcome, write_search_page
from harness.search.results import summarize_search
from labci_cdp import chromium

TRIALS = [
    {"number": 0, "state": "feasible", "technique": "fixed-point", "config": {"layer_bits": {"/fc1/Gemm": 4}},
     "values": {"accuracy": 0.96, "p50": 1.0}, "reasons": []},
    {"number": 1, "state": "excluded", "technique": "prune-magnitude", "config": {}, "values": None,
     "reasons": ["before the device: stored size < 4 KB"]},
    {"number": 2, "state": "feasible", "technique": "mixed-precision", "config": {}, "values": {"accuracy": 0.97,
                                                                                              "p50": 2.0},
     "reasons": []},
    {"number": 3, "state": "feasible", "technique": "low-rank", "config": {}, "values": {"accuracy": 0.95,
                                                                                       "p50": 1.5},
     "reasons": []},
]
HAND = [{"name": "<fp32>", "technique": "fp32", "values": {"accuracy": 0.97, "p50": 2.5}, "feasible": True}]


@pytest.fixture
def page(tmp_path):
    summary = summarize_search(TRIALS, HAND, ["accuracy", "p50"])
    result = SearchOutcome("s", f"sqlite:///{tmp_path / 'h.sqlite'}", [], summary, None)
    return write_search_page(result, tmp_path / "search.html")


@pytest.fixture
def browser():
    with chromium() as b:
        yield b


def test_search_page_in_headless_chromium(page, browser):
    text = page.read_text()
    assert "&lt;fp32&gt;" in text and "<fp32>" not in text
    browser.open(page)
    # plotly.js is inlined gzip-compressed: the page unpacks it, then draws
    assert browser.evaluate("window.reportReady.then(() => 'drawn', e => e.message)") == "drawn"
    traces = json.loads(browser.evaluate("""JSON.stringify(document.getElementById('plot-0')._fullData.map(
        t => ({name: t.name, x: Array.from(t.x || []), y: Array.from(t.y || []), text: t.text})))"""))
    by_name = {t["name"]: t for t in traces}
    front = by_name["found front"]
    assert sorted(zip(front["x"], front["y"])) == [(1.0, 96.0), (2.0, 97.0)]     # trial 3 is dominated
    assert sorted(zip(by_name["trials, feasible"]["x"], by_name["trials, feasible"]["y"])) == [
        (1.0, 96.0), (1.5, 95.0), (2.0, 97.0)]
    assert by_name["hand-written variants"]["x"] == [2.5]
    assert browser.evaluate("document.querySelectorAll('#search-front tbody tr').length") == 2
    assert browser.evaluate("document.querySelectorAll('.js-plotly-plot').length") == 2
    assert browser.console_errors() == []
