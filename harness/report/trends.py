"""History across runs: per device and variant, a band of past runs with change points marked
and the report's run highlighted; and the regression verdicts. The x axis is the runs in order,
named by tag or git commit (what changed between two points is a commit, not an hour); the
latency is in the page's unit.

Built from the store's key columns (no per-inference samples). A lab's year of nights is
aggregated, not drawn point by point: each series is cut into at most MAX_BINS bins of
consecutive runs, each drawn as its range (the band) and median (the line), so the page stays
small however long the history; change points (harness/changepoints.py) are found on every
run, before binning. Every user-provided name is escaped.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.colors
import plotly.io as pio

from ..changepoints import change_points
from .axes import log_ticks
from .figures import LAYOUT, PALETTE, esc

MAX_BINS = 60            # per series: a history longer than this is drawn as bins of runs
DEVICE_MENU_SERIES = 20  # more series than this: a menu shows one device at a time
TREND_COLUMNS = ["run_id", "started_at", "git_commit", "tag", "device", "model", "variant", "p50_ms",
                 "p99_ms", "accuracy", "peak_rss_kb", "verdict"]


def trend_frame(rows: list[dict], devices, variant_ids) -> pd.DataFrame:
    """Rows of store.trend_rows() for the report's devices and variants."""
    df = pd.DataFrame(rows, columns=TREND_COLUMNS)
    if df.empty:
        return df
    df["variant_id"] = df["model"] + "/" + df["variant"]
    df = df[df["device"].isin(set(devices)) & df["variant_id"].isin(set(variant_ids))]
    # one point per run and series: the run's last measurement of it
    return df.drop_duplicates(["run_id", "device", "variant_id"], keep="last")


def has_history(trend: pd.DataFrame) -> bool:
    return not trend.empty and trend["run_id"].nunique() >= 2


class PlainFigure(dict):
    """A figure as plotly's plain JSON structure ({"data": [...], "layout": {...}}), rendered
    without plotly's per-property validation: a lab's 600 trend traces take seconds to build
    as validated graph objects and milliseconds as plain data. Where the report uses a figure
    (to_html; plotly.io.write_images takes dicts), this is one."""

    def to_html(self, **options) -> str:
        return pio.to_html(self, validate=False, **options)


def _sig(value: float) -> float:
    return float(f"{value:.5g}")  # five significant digits: the page carries no noise digits


def _fill(colour: str) -> str:
    red, green, blue = plotly.colors.hex_to_rgb(colour)
    return f"rgba({red},{green},{blue},0.25)"


def run_labels(run_ids, gits, tags) -> dict:
    """{run id: x label}: the tag, else the git commit, else the run id; a label two runs
    share gets the run id beside it (the axis needs one category per run)."""
    first = {}
    for rid, git, tag in zip(run_ids, gits, tags):
        first.setdefault(rid, tag or (git[:8] if git else None) or rid[:12])
    counts: dict = {}
    for label in first.values():
        counts[label] = counts.get(label, 0) + 1
    return {rid: (label if counts[label] == 1 else f"{label} · {rid[:6]}") for rid, label in first.items()}


def series_traces(p50, when, run_ids, gits, tags, name: str, colour: str, highlight_run=None,
                  unit: str = "ms", labels: dict | None = None) -> list:
    """The traces of one device and variant: band, median line, change points and the
    highlighted run. Arguments: one entry per run with a positive p50 (in `unit`), in time
    order; `labels`: {run id: x label} (default: the run's start time)."""
    xs = [labels[r] for r in run_ids] if labels else list(when)
    firsts, lasts, low, mid, high = _bins(p50)
    x = [xs[c] for c in (firsts + lasts) // 2]   # each bin drawn at its centre run
    label = name.replace("%", "&#37;")  # a name is not a hovertemplate placeholder
    line = {"type": "scatter", "x": x, "y": [_sig(v) for v in mid], "name": name, "legendgroup": name,
            "line": {"color": colour, "width": 1.5}}
    traces = []
    if len(firsts) < len(p50):  # fewer bins than runs: drawn as a band and its medians
        traces.append(_band_trace(x, low, high, name, colour))
        line.update(mode="lines", customdata=[[int(b - a + 1), when[a][:10], when[b][:10], _sig(lo), _sig(hi)]
                                              for a, b, lo, hi in zip(firsts, lasts, low, high)],
                    hovertemplate=f"<b>{label}</b><br>%{{customdata[0]}} runs %{{customdata[1]}} to "
                                  f"%{{customdata[2]}}<br>p50 median %{{y:.4g}} {unit}, range %{{customdata[3]:.4g}} "
                                  f"to %{{customdata[4]:.4g}} {unit}<extra></extra>")
    else:
        line.update(mode="lines+markers", customdata=[[esc(run_ids[i]), esc((gits[i] or "unknown")[:12]),
                                                       esc(tags[i] or "")] for i in range(len(p50))],
                    hovertemplate=f"<b>{label}</b><br>run %{{customdata[0]}}<br>git %{{customdata[1]}}"
                                  f"<br>tag %{{customdata[2]}}<br>p50 %{{y:.4g}} {unit}<extra></extra>")
    traces.append(line)
    marks = _marks(p50, xs, run_ids, gits, tags, name, highlight_run, unit)
    if marks[0]:
        traces.append(_marks_trace(*marks, name, colour))
    return traces


def _bins(p50) -> tuple:
    """(first run, last run, min, median, max) of each bin: at most MAX_BINS bins of
    consecutive runs, sized as np.array_split sizes them."""
    n = len(p50)
    bins = min(n, MAX_BINS)
    per, extra = divmod(n, bins)  # `extra` bins hold one more run
    split = extra * (per + 1)
    parts = [p50[:split].reshape(extra, per + 1), p50[split:].reshape(bins - extra, per)]
    low = np.concatenate([part.min(axis=1) for part in parts if part.size])
    mid = np.concatenate([np.median(part, axis=1) for part in parts if part.size])
    high = np.concatenate([part.max(axis=1) for part in parts if part.size])
    firsts = np.concatenate([np.arange(extra) * (per + 1), split + np.arange(bins - extra) * per])
    lasts = np.append(firsts[1:], n) - 1
    return firsts, lasts, low, mid, high


def _band_trace(x: list, low, high, name: str, colour: str) -> dict:
    """The bins' ranges as one filled outline: along the maxima, back along the minima."""
    return {"type": "scatter", "x": x + x[::-1], "y": [_sig(v) for v in high] + [_sig(v) for v in low[::-1]],
            "fill": "toself", "mode": "lines", "line": {"width": 0}, "fillcolor": _fill(colour),
            "hoverinfo": "skip", "legendgroup": name, "showlegend": False, "name": f"{name} band"}


def _marks(p50, xs: list, run_ids, gits, tags, name: str, highlight_run, unit: str) -> tuple:
    """(x, y, symbols, hover texts) of the change points, then of the highlighted run."""
    marks_x, marks_y, symbols, texts = [], [], [], []
    for i in change_points(p50):
        before, after = np.median(p50[max(0, i - 30):i]), np.median(p50[i:i + 30])
        marks_x.append(xs[i])
        marks_y.append(_sig(after))
        symbols.append("triangle-up" if after > before else "triangle-down")
        texts.append(f"<b>change point · {name}</b><br>{_run_text(i, run_ids, gits, tags)}<br>"
                     f"p50 {before:.4g} -> {after:.4g} {unit} ({100 * (after / before - 1):+.1f} %)")
    if highlight_run is not None:
        for i in (i for i in range(len(p50)) if run_ids[i] == highlight_run):
            marks_x.append(xs[i])
            marks_y.append(_sig(p50[i]))
            symbols.append("star")
            texts.append(f"<b>this run · {name}</b><br>{_run_text(i, run_ids, gits, tags)}<br>"
                         f"p50 {p50[i]:.4g} {unit}")
    return marks_x, marks_y, symbols, texts


def _run_text(i: int, run_ids, gits, tags) -> str:
    return (f"run {esc(run_ids[i])}<br>git {esc((gits[i] or 'unknown')[:12])}"
            + (f"<br>tag {esc(tags[i])}" if tags[i] else ""))


def _marks_trace(marks_x: list, marks_y: list, symbols: list, texts: list, name: str, colour: str) -> dict:
    return {"type": "scatter", "x": marks_x, "y": marks_y, "mode": "markers", "legendgroup": name,
            "showlegend": False, "name": f"{name} marks", "hovertext": texts, "hoverinfo": "text",
            "marker": {"symbol": symbols, "size": 12, "color": colour,
                       "line": {"width": 1, "color": "black"}}}


def trend_figure(trend: pd.DataFrame, highlight_run=None, unit: str = "ms", factor: float = 1.0,
                 emulated: frozenset = frozenset()) -> PlainFigure:
    """Median latency per device and variant over the runs (in `unit`, `factor` from ms)."""
    trend = trend[trend["p50_ms"].notna() & (trend["p50_ms"] > 0)]
    trend = (trend.assign(when=pd.to_datetime(trend["started_at"], utc=True, format="ISO8601"))
             .sort_values(["device", "variant_id", "when"], kind="stable"))
    # plain Python lists, once: iterating pandas rows costs seconds for a lab's year
    devices, variant_ids = trend["device"].tolist(), trend["variant_id"].tolist()
    when = trend["when"].dt.strftime("%Y-%m-%d %H:%M").tolist()
    run_ids, p50 = trend["run_id"].tolist(), trend["p50_ms"].to_numpy(dtype=float) * factor
    gits = [g if isinstance(g, str) else None for g in trend["git_commit"].tolist()]
    tags = [t if isinstance(t, str) else None for t in trend["tag"].tolist()]
    # the runs in start order, each named by its tag or commit
    order = trend.sort_values(["when", "run_id"], kind="stable").drop_duplicates("run_id")
    labels = run_labels(order["run_id"].tolist(),
                        [g if isinstance(g, str) else None for g in order["git_commit"].tolist()],
                        [t if isinstance(t, str) else None for t in order["tag"].tolist()])
    labels = {rid: esc(label) for rid, label in labels.items()}   # tags are user-written
    starts = [i for i in range(len(devices))
              if i == 0 or (devices[i], variant_ids[i]) != (devices[i - 1], variant_ids[i - 1])]
    traces, owner, longest = [], [], 0
    for k, (a, b) in enumerate(zip(starts, starts[1:] + [len(devices)])):
        made = series_traces(p50[a:b], when[a:b], run_ids[a:b], gits[a:b], tags[a:b],
                             f"{esc(devices[a])}{' (emulated)' if devices[a] in emulated else ''} · "
                             f"{esc(variant_ids[a])}", PALETTE[k % len(PALETTE)], highlight_run, unit, labels)
        traces += made
        owner += [devices[a]] * len(made)
        longest = max(longest, b - a)
    how = (f"band: range of each bin of runs, line: its median (at most {MAX_BINS} bins per series)"
           if longest > MAX_BINS else "one point per run")
    layout = {**LAYOUT, "template": pio.templates[LAYOUT["template"]].to_plotly_json(),
              "title": {"text": f"Trend: median latency per device and variant across runs<br><sup>{how}; "
                                "triangles: change points; star: this run</sup>"},
              "xaxis": {"title": {"text": "run (tag or git commit), oldest first"}, "type": "category",
                        "categoryorder": "array", "categoryarray": list(labels.values())},
              "yaxis": {"title": {"text": f"p50 latency ({unit})"}, **(log_ticks(p50) or {"type": "log"})}}
    names = sorted(set(devices))
    if len(starts) > DEVICE_MENU_SERIES and len(names) > 1:
        # a lab's 200 series in one plot are a blur: show one device at a time
        buttons = [{"label": esc(d), "method": "restyle", "args": [{"visible": [o == d for o in owner]}]}
                   for d in names]
        buttons.append({"label": "all devices", "method": "restyle", "args": [{"visible": [True] * len(owner)}]})
        for trace, o in zip(traces, owner):
            trace["visible"] = o == names[0]
        layout["updatemenus"] = [{"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right",
                                  "y": 1.15, "yanchor": "top"}]
    return PlainFigure(data=traces, layout=layout)


def regressions_html(comparisons: list[dict]) -> str:
    """The verdicts of every comparison made for the report's runs; regressions first."""
    if not comparisons:
        return ""
    parts = ["<h2 id='regressions'>Regressions</h2>"]
    for c in comparisons:
        data = c["data"]
        verdicts = sorted(data["verdicts"], key=lambda v: (not v["regression"], v["device"], v["variant"]))
        parts.append(f"<p class='meta'>run {html.escape(c['new_run'])} against baseline "
                     f"{html.escape(c['base_run'])} · gates {html.escape(', '.join(c['gates']))} · "
                     f"<b>{c['regressions']} regression(s)</b> in {len(verdicts)} check(s)</p>")
        rows = "".join(
            f"<tr class='{'regression' if v['regression'] else 'ok'}'>"
            f"<td>{'REGRESSION' if v['regression'] else 'ok'}</td><td>{html.escape(v['device'])}</td>"
            f"<td>{html.escape(v['model'])}/{html.escape(v['variant'])}</td><td>{html.escape(v['gate'])}</td>"
            f"<td>{html.escape(v['text'])}</td></tr>" for v in verdicts)
        parts.append("<table class='verdicts'><thead><tr><th>verdict</th><th>device</th><th>variant</th>"
                     f"<th>gate</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table>")
    return "".join(parts)
