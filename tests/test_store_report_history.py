"""The report's history view at lab scale: a year of nights aggregates into bands (never a point
per run), change points are marked where the level moved, the report's run is highlighted."""
import datetime as dt
import json
import re

import numpy as np

from harness.report import trends, write_report
from harness.store import Store
from harness.store_tables import runs_table
from fake_measurements import fake_measurement

START = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.timezone.utc)


def year(keys, nights=365, step_at=None, seed=0):
    """trend rows: one per night and key; the first key's p50 steps up 15 % at `step_at`."""
    rng = np.random.default_rng(seed)
    rows = []
    for night in range(nights):
        for k, (device, variant) in enumerate(keys):
            level = 1.0 + k
            if k == 0 and step_at is not None and night >= step_at:
                level *= 1.15
            rows.append({"run_id": f"r{night:03d}", "started_at": (START + dt.timedelta(days=night)).isoformat(),
                         "git_commit": f"c{night:03d}", "tag": f"nightly-{night}", "device": device,
                         "model": "m", "variant": variant, "p50_ms": level * float(np.exp(rng.normal(0, 0.02))),
                         "p99_ms": None, "accuracy": None, "peak_rss_kb": None, "verdict": "valid"})
    return rows


def traces_of(fig, name):
    return {t["name"]: t for t in fig["data"] if t["name"].startswith(name)}


def test_a_year_is_drawn_as_bands_with_the_change_point_and_this_run():
    keys = [("rpi5", "fp32"), ("rpi5", "int8"), ("jetson", "fp32")]
    frame = trends.trend_frame(year(keys, step_at=250), ["rpi5", "jetson"], ["m/fp32", "m/int8"])
    fig = trends.trend_figure(frame, highlight_run="r364")
    points = sum(len(t["x"]) for t in fig["data"])
    assert points < 3 * (2 * trends.MAX_BINS + trends.MAX_BINS + 3)  # bins, not 3 x 365 points
    stepped = traces_of(fig, "rpi5 · m/fp32")
    assert len(stepped["rpi5 · m/fp32"]["x"]) == trends.MAX_BINS
    band, line = stepped["rpi5 · m/fp32 band"], stepped["rpi5 · m/fp32"]
    assert band["fill"] == "toself"
    high, low = band["y"][:trends.MAX_BINS], band["y"][trends.MAX_BINS:][::-1]
    assert all(h > m > lo for h, m, lo in zip(high, line["y"], low))  # each bin's range around its median
    marks = stepped["rpi5 · m/fp32 marks"]
    assert marks["marker"]["symbol"] == ["triangle-up", "star"]
    # x is the run's tag (a commit or tag moved the level, not a date)
    assert marks["x"][0] in {f"nightly-{n}" for n in range(248, 253)}
    assert fig["layout"]["xaxis"]["type"] == "category"
    assert fig["layout"]["xaxis"]["categoryarray"][:2] == ["nightly-0", "nightly-1"]
    assert "r364" in marks["hovertext"][1] and "+1" in marks["hovertext"][0]  # about +15 %
    # every run is in exactly one bin: the bins' run counts add up to the year
    assert sum(c[0] for c in stepped["rpi5 · m/fp32"]["customdata"]) == 365
    # steady series: the star only, no change point
    assert traces_of(fig, "jetson · m/fp32")["jetson · m/fp32 marks"]["marker"]["symbol"] == ["star"]
    # it renders as plotly.js reads it (the template resolved, not a name)
    assert '"type":"log"' in fig.to_html(full_html=False, include_plotlyjs=False).replace(" ", "")


def test_a_short_history_keeps_one_point_per_run():
    frame = trends.trend_frame(year([("pi", "fp32")], nights=5), ["pi"], ["m/fp32"])
    [line] = trends.trend_figure(frame)["data"]
    assert len(line["x"]) == 5 and line["mode"] == "lines+markers"
    assert [c[0] for c in line["customdata"]] == ["r000", "r001", "r002", "r003", "r004"]


def test_many_series_get_a_device_menu_and_names_are_escaped():
    keys = [(f"board-{b}<i>", f"v{v}") for b in range(3) for v in range(8)]
    frame = trends.trend_frame(year(keys, nights=30), [k[0] for k in keys], [f"m/{k[1]}" for k in keys])
    fig = trends.trend_figure(frame)
    [menu] = fig["layout"]["updatemenus"]
    assert [b["label"] for b in menu["buttons"]] == ["board-0&lt;i&gt;", "board-1&lt;i&gt;", "board-2&lt;i&gt;",
                                               "all devices"]
    visible = [t["name"] for t in fig["data"] if t["visible"]]
    assert len(visible) == 8 and all(n.startswith("board-0&lt;i&gt;") for n in visible)
    assert "<i>" not in json.dumps(fig)


def test_report_of_the_newest_night_on_a_long_history(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    ids = []
    for night in range(trends.MAX_BINS + 20):
        run_id = store.start_run(tag=f"nightly-{night}")
        ids.append(run_id)
        slower = 1.2 if night >= 50 else 1.0
        store.save(fake_measurement(run_id=run_id, n=50, seed=night, median_ms=slower))
        with store.engine.begin() as conn:
            conn.execute(runs_table.update().where(runs_table.c.id == run_id)
                         .values(started_at=(START + dt.timedelta(days=night)).isoformat()))
    path = write_report(store, tmp_path / "r.html", run_id=run_id)
    text = path.read_text()
    assert "Trend: median latency" in text
    # the figure's JSON escapes <, > and / inside the page
    plain = text.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u002f", "/").replace("\\u00b7", "·")
    found = re.findall(r"change point · local · digits-cnn/fp32</b><br>run (\w+)", plain)
    assert len(found) == 1 and found[0] in ids[48:53]  # the night the board became 20 % slower
    assert f"this run · local · digits-cnn/fp32</b><br>run {ids[-1]}" in plain
