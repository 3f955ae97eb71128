"""The search's figures: the found front against the hand-written variants, the hypervolume
per trial, and a table of the front points' configurations.

Each function takes the plain dict of ``harness.search.results.summarize_search`` (no store,
no optuna); every name and configuration text is HTML-escaped before it goes in.
"""
from __future__ import annotations

import html

import plotly.graph_objects as go

from .figures import LAYOUT, esc

STATE_STYLE = {"feasible": ("#1f77b4", "circle"), "infeasible": ("#d62728", "x")}


def _axis(summary: dict, i: int) -> tuple:
    """(title, scale, value getter) of objective i: accuracy in %, the rest as stored."""
    name, label = summary["objectives"][i], summary["labels"][i]
    if name == "accuracy":
        return "top-1 accuracy (%)", 100.0
    if name == "energy":
        return "energy per inference (mJ)", 1e3
    return label, 1.0


def front_figure(summary: dict, x: int = 0, y: int = 1) -> go.Figure:
    """Objective ``x`` against objective ``y``: every measured trial (feasible, infeasible),
    the found front joined, the hand-written variants labelled, their own front dashed."""
    fig = go.Figure()
    names = summary["objectives"]
    if len(names) < 2:
        x, y = None, 0
    y_title, y_scale = _axis(summary, y)
    x_title, x_scale = ("trial", 1.0) if x is None else _axis(summary, x)

    def xy(values, number=None):
        return (number if x is None else values[names[x]] * x_scale), values[names[y]] * y_scale

    for state, (colour, symbol) in STATE_STYLE.items():
        rows = [t for t in summary["trials"] if t["state"] == state and t["values"]]
        if not rows:
            continue
        pts = [xy(t["values"], t["number"]) for t in rows]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name=f"trials, {state}",
            marker=dict(color=colour, symbol=symbol, size=8, opacity=0.6),
            hovertext=[f"<b>trial {t['number']}</b> ({state})<br>{esc(t['description'])}"
                       + (f"<br>{esc('; '.join(t['reasons']))}" if t.get("reasons") else "") for t in rows],
            hoverinfo="text"))
    on_front = sorted((t for t in summary["trials"] if t["on_front"]),
                      key=lambda t: xy(t["values"], t["number"]))
    if on_front:
        pts = [xy(t["values"], t["number"]) for t in on_front]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name="found front",
            line=dict(color="#1f77b4", width=2), marker=dict(symbol="diamond", size=13, color="#1f77b4",
                                                             line=dict(width=1.5, color="black")),
            hovertext=[f"<b>trial {t['number']}</b> (front)<br>{esc(t['description'])}" for t in on_front],
            hoverinfo="text"))
    hand = summary["handwritten"]
    if hand and x is not None:
        for within, name, colour in ((True, "hand-written variants", "#ff7f0e"),
                                     (False, "hand-written, outside the budgets", "#bbbbbb")):
            group = [h for h in hand if h.get("feasible", True) == within]
            if not group:
                continue
            pts = [xy(h["values"]) for h in group]
            fig.add_trace(go.Scatter(
                x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers+text", name=name,
                text=[esc(h["name"]) for h in group], textposition="top center",
                marker=dict(symbol="square", size=10, color=colour, line=dict(width=1, color="black")),
                hovertext=[f"<b>{esc(h['name'])}</b><br>{esc(h.get('technique') or '')}"
                           + (f"<br>misses {esc('; '.join(h.get('reasons') or []))}" if not within else "")
                           for h in group],
                hoverinfo="text"))
        front_pts = sorted(xy(h["values"]) for h in hand if h["on_front"])
        fig.add_trace(go.Scatter(x=[p[0] for p in front_pts], y=[p[1] for p in front_pts], mode="lines",
                                 name="hand-written front", line=dict(color="#ff7f0e", dash="dash"),
                                 hoverinfo="skip"))
    excluded = sum(t["state"] == "excluded" for t in summary["trials"])
    title = (f"Search: found front vs hand-written variants ({len(summary['trials'])} trials, "
             f"{excluded} excluded before the device by a budget)")
    fig.update_layout(title=title, xaxis_title=esc(x_title), yaxis_title=esc(y_title), **LAYOUT)
    return fig


def hypervolume_figure(summary: dict) -> go.Figure:
    """The found front's hypervolume after each trial, the hand-written variants' as a line
    (same reference point)."""
    fig = go.Figure()
    hist = summary["hypervolume_history"]
    fig.add_trace(go.Scatter(x=[h["trial"] for h in hist], y=[h["hypervolume"] for h in hist],
                             mode="lines+markers", name="found front", line=dict(shape="hv")))
    if summary["handwritten"] and hist:
        fig.add_trace(go.Scatter(x=[hist[0]["trial"], hist[-1]["trial"]],
                                 y=[summary["hypervolume_handwritten"]] * 2, mode="lines",
                                 name="hand-written variants", line=dict(dash="dash", color="#ff7f0e")))
    ref = summary["reference"] or {}
    ref_text = ", ".join(f"{k} {v:.4g}" for k, v in ref.items())
    fig.update_layout(title=f"Hypervolume per trial (reference point: {esc(ref_text)})", xaxis_title="trial",
                      yaxis_title="hypervolume", **LAYOUT)
    return fig


def front_table_html(summary: dict) -> str:
    """The front points, each with its objectives and its configuration in words."""
    names = summary["objectives"]
    head = "".join(f"<th>{html.escape(_axis(summary, i)[0])}</th>" for i in range(len(names)))
    rows = []
    for t in sorted((t for t in summary["trials"] if t["on_front"]), key=lambda t: t["number"]):
        cells = "".join(f"<td>{t['values'][n] * _axis(summary, i)[1]:.4g}</td>" for i, n in enumerate(names))
        mark = " (dominates or ties every hand-written variant)" if t["number"] in summary["dominating"] else ""
        rows.append(f"<tr><td>{t['number']}{html.escape(mark)}</td>{cells}"
                    f"<td>{html.escape(t['description'])}</td></tr>")
    hv = (f"<p class='meta'>hypervolume: found {summary['hypervolume_found']:.4g}, hand-written "
          f"{summary['hypervolume_handwritten']:.4g} (same reference point)</p>")
    return (f"<h2>Search front</h2>{hv}<table class='verdicts' id='search-front'><thead><tr><th>trial</th>{head}"
            f"<th>configuration</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def search_figures(summary: dict) -> list:
    """Every pair of objectives against each other, then the hypervolume history."""
    n = len(summary["objectives"])
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)] or [(0, 0)]
    figs = [front_figure(summary, x=j, y=i) if summary["objectives"][i] == "accuracy" else
            front_figure(summary, x=i, y=j) for i, j in pairs]
    return figs + [hypervolume_figure(summary)]
