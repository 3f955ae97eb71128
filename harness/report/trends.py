"""History across runs: p50 per device and variant over run time, and the regression verdicts.

Built from the store's key columns (no per-inference samples), so a lab's long history stays
cheap to draw. Every user-provided name is escaped.
"""
from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from .figures import LAYOUT, esc


def trend_frame(rows: list[dict], devices, variant_ids) -> pd.DataFrame:
    """Rows of store.trend_rows() for the report's devices and variants."""
    df = pd.DataFrame(rows, columns=["run_id", "started_at", "git_commit", "tag", "device", "model",
                                     "variant", "p50_ms", "p99_ms", "accuracy", "peak_rss_kb"])
    if df.empty:
        return df
    df["variant_id"] = df["model"] + "/" + df["variant"]
    df = df[df["device"].isin(set(devices)) & df["variant_id"].isin(set(variant_ids))]
    # one point per run and series: the run's last measurement of it
    return df.drop_duplicates(["run_id", "device", "variant_id"], keep="last")


def has_history(trend: pd.DataFrame) -> bool:
    return not trend.empty and trend["run_id"].nunique() >= 2


def trend_figure(trend: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    trend = trend.assign(when=pd.to_datetime(trend["started_at"], utc=True, format="ISO8601"))
    for (device, variant_id), group in trend.groupby(["device", "variant_id"], sort=True):
        group = group.sort_values("when")
        hover = [f"<b>{esc(device)} · {esc(variant_id)}</b><br>run {esc(r.run_id)}"
                 f"<br>git {esc((r.git_commit or 'unknown')[:12])}" + (f"<br>tag {esc(r.tag)}" if r.tag else "")
                 + f"<br>p50 {r.p50_ms:.4g} ms" for r in group.itertuples()]
        fig.add_trace(go.Scatter(x=group["when"], y=group["p50_ms"], mode="lines+markers",
                                 name=f"{esc(device)} · {esc(variant_id)}", hovertext=hover, hoverinfo="text"))
    fig.update_layout(title="Trend: median latency per device and variant across runs",
                      xaxis_title="run start (UTC)", yaxis_title="p50 latency (ms)", **LAYOUT)
    fig.update_yaxes(type="log")
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
