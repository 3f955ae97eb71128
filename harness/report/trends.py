"""History across runs: per device and variant, a band of past runs with change points marked
and the report's run highlighted; and the regression verdicts.

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
import plotly.graph_objects as go

from ..changepoints import change_points
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


def _when(ts) -> str:
    return ts.strftime("%Y-%m-%d %H:%M")


def _run_text(row) -> str:
    return (f"run {esc(row.run_id)}<br>git {esc((row.git_commit or 'unknown')[:12])}"
            + (f"<br>tag {esc(row.tag)}" if isinstance(row.tag, str) and row.tag else ""))


def series_traces(group: pd.DataFrame, name: str, colour: str, highlight_run=None) -> list:
    """The traces of one device and variant: band, median line, change points and the
    highlighted run; `group` holds one row per run with a positive p50, in time order."""
    p50 = group["p50_ms"].to_numpy(dtype=float)
    rows = list(group.itertuples())
    bins = np.array_split(np.arange(len(rows)), min(len(rows), MAX_BINS))
    x, low, mid, high, hover = [], [], [], [], []
    for members in bins:
        values = p50[members]
        centre = rows[members[len(members) // 2]]
        x.append(_when(centre.when))
        low.append(float(values.min()))
        mid.append(float(np.median(values)))
        high.append(float(values.max()))
        if len(members) == 1:
            hover.append(f"<b>{name}</b><br>{_run_text(centre)}<br>p50 {values[0]:.4g} ms")
        else:
            hover.append(f"<b>{name}</b><br>{len(members)} runs {_when(rows[members[0]].when)} to "
                         f"{_when(rows[members[-1]].when)}<br>p50 median {mid[-1]:.4g} ms, "
                         f"range {low[-1]:.4g} to {high[-1]:.4g} ms")
    traces = []
    binned = any(len(members) > 1 for members in bins)
    if binned:
        traces.append(go.Scatter(x=x + x[::-1], y=high + low[::-1], fill="toself", mode="lines",
                                 line=dict(width=0), fillcolor=colour, opacity=0.25, hoverinfo="skip",
                                 legendgroup=name, showlegend=False, name=f"{name} band"))
    traces.append(go.Scatter(x=x, y=mid, mode="lines" if binned else "lines+markers", name=name,
                             legendgroup=name, line=dict(color=colour, width=1.5), hovertext=hover,
                             hoverinfo="text"))
    marks_x, marks_y, symbols, texts = [], [], [], []
    for index in change_points(p50):
        before, after = np.median(p50[max(0, index - 30):index]), np.median(p50[index:index + 30])
        row = rows[index]
        marks_x.append(_when(row.when))
        marks_y.append(float(after))
        symbols.append("triangle-up" if after > before else "triangle-down")
        texts.append(f"<b>change point · {name}</b><br>{_run_text(row)}<br>p50 {before:.4g} -> {after:.4g} ms "
                     f"({100 * (after / before - 1):+.1f} %)")
    for row, value in zip(rows, p50):
        if highlight_run is not None and row.run_id == highlight_run:
            marks_x.append(_when(row.when))
            marks_y.append(float(value))
            symbols.append("star")
            texts.append(f"<b>this run · {name}</b><br>{_run_text(row)}<br>p50 {value:.4g} ms")
    if marks_x:
        traces.append(go.Scatter(x=marks_x, y=marks_y, mode="markers", legendgroup=name, showlegend=False,
                                 name=f"{name} marks", hovertext=texts, hoverinfo="text",
                                 marker=dict(symbol=symbols, size=12, color=colour,
                                             line=dict(width=1, color="black"))))
    return traces


def trend_figure(trend: pd.DataFrame, highlight_run=None) -> go.Figure:
    trend = trend.assign(when=pd.to_datetime(trend["started_at"], utc=True, format="ISO8601"))
    trend = trend[trend["p50_ms"].notna() & (trend["p50_ms"] > 0)]
    traces, owner = [], []
    keys = sorted(trend.groupby(["device", "variant_id"], sort=True).groups)
    for i, ((device, variant_id), group) in enumerate(trend.groupby(["device", "variant_id"], sort=True)):
        made = series_traces(group.sort_values("when", kind="stable"), f"{esc(device)} · {esc(variant_id)}",
                             PALETTE[i % len(PALETTE)], highlight_run)
        traces += made
        owner += [device] * len(made)
    fig = go.Figure(data=traces)
    longest = trend.groupby(["device", "variant_id"]).size().max() if len(trend) else 0
    how = (f"band: range of each bin of runs, line: its median (at most {MAX_BINS} bins per series)"
           if longest > MAX_BINS else "one point per run")
    fig.update_layout(title=f"Trend: median latency per device and variant across runs<br><sup>{how}; "
                            f"triangles: change points; star: this run</sup>",
                      xaxis_title="run start (UTC)", yaxis_title="p50 latency (ms)", **LAYOUT)
    fig.update_yaxes(type="log")
    devices = sorted({device for device, _ in keys})
    if len(keys) > DEVICE_MENU_SERIES and len(devices) > 1:
        # a lab's 200 series in one plot are a blur: show one device at a time
        buttons = [dict(label=esc(d), method="restyle", args=[{"visible": [o == d for o in owner]}])
                   for d in devices]
        buttons.append(dict(label="all devices", method="restyle", args=[{"visible": [True] * len(owner)}]))
        for trace, o in zip(fig.data, owner):
            trace.visible = o == devices[0]
        fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right",
                                            y=1.15, yanchor="top")])
    return fig


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
