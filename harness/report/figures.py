"""The report's plotly figures, from the measurements DataFrame.

Plotly renders trace names, hover text and tick labels as (a subset of) HTML, so every
name that comes from a user (device, model, variant) is escaped before it goes in.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from .pareto import pareto_mask

MAX_BOX_SAMPLES = 2000  # per measurement: keeps the page small for long runs
MAX_BOX_SAMPLES_TOTAL = 200_000  # over the figure: a report of a lab's whole history stays openable
LAYOUT = dict(template="plotly_white", height=480, margin=dict(l=60, r=20, t=60, b=60),
              legend=dict(orientation="v"))


PALETTE = plotly.colors.qualitative.Plotly


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def time_unit(values_ms) -> tuple[str, float]:
    """A readable unit for latencies: (name, factor from ms). Desktop inferences take
    microseconds, MCU ones milliseconds to seconds."""
    finite = [v for v in values_ms if v is not None and np.isfinite(v)]
    typical = float(np.median(finite)) if finite else 1.0
    if typical < 0.1:
        return "us", 1e3
    if typical >= 1000:
        return "s", 1e-3
    return "ms", 1.0


def tradeoff_figure(df: pd.DataFrame, x: str, x_title: str, title: str, log_x: bool = False,
                    front_column: str | None = None) -> go.Figure:
    """Accuracy against a cost, one colour per device and model, the Pareto front drawn
    (per device and model: a variant trades against its siblings on the same board).

    `front_column`: the front decided under the tie rules (harness.frame: tied variants
    stay on it together); without it, a plain Pareto of the point estimates."""
    fig = go.Figure()
    data = df.dropna(subset=[x, "accuracy"])
    if "is_control" in data:
        data = data[~data["is_control"].astype(bool)]   # the A/A twin is not a choice
    for i, ((device, model), group) in enumerate(data.groupby(["device", "model"], sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        group = group.sort_values(x)
        front = (group[front_column].astype(bool).to_numpy() if front_column
                 else np.array(pareto_mask(list(group[x]), list(group["accuracy"]))))
        name = f"{esc(device)} · {esc(model)}"
        hover = [f"<b>{esc(r.variant)}</b><br>{esc(r.technique)}<br>{esc(device)}"
                 f"{' (emulated)' if r.emulated else ''}<br>{x_title}: {getattr(r, x):.4g}"
                 f"<br>top-1: {100 * r.accuracy:.2f}%"
                 + (f"<br>vs fp32: {esc(r.vs_fp32)}" if getattr(r, "vs_fp32", None) else "")
                 + (f"<br><b>{esc(r.verdict).upper()}</b>" if getattr(r, "verdict", "valid") == "invalid" else "")
                 for r in group.itertuples()]
        fig.add_trace(go.Scatter(
            x=group[x], y=group["accuracy"] * 100, mode="markers", name=name,
            legendgroup=name, hovertext=hover, hoverinfo="text",
            marker=dict(size=np.where(front, 14, 8), line=dict(width=np.where(front, 2, 0), color="black"),
                        color=colour, symbol=["diamond" if f else "circle" for f in front])))
        fx = group[front]
        fig.add_trace(go.Scatter(
            x=fx[x], y=fx["accuracy"] * 100, mode="lines", name=f"Pareto front · {name}",
            legendgroup=name, line=dict(dash="dash", width=1.5, color=colour), hoverinfo="skip",
            showlegend=True))
    if data.empty:
        # an empty chart says why, rather than showing bare axes
        fig.add_annotation(text="nothing to plot: no measurement here has a top-1 accuracy (the manifests "
                                "declare no labelled dataset); see the agreement column and the table",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="top-1 accuracy (%)", **LAYOUT)
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def memory_figure(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for device, group in df.groupby("device", sort=True):
        group = group.sort_values("variant_id")
        if group["peak_rss_kb"].notna().any():
            fig.add_trace(go.Bar(x=[esc(v) for v in group["variant_id"]], y=group["peak_rss_kb"] / 1024,
                                 name=f"{esc(device)} peak RSS (MB)"))
        if group["ram_bytes"].notna().any():
            fig.add_trace(go.Bar(x=[esc(v) for v in group["variant_id"]], y=group["ram_bytes"] / 1024,
                                 name=f"{esc(device)} MCU RAM (KB)"))
            fig.add_trace(go.Bar(x=[esc(v) for v in group["variant_id"]], y=group["flash_bytes"] / 1024,
                                 name=f"{esc(device)} MCU flash (KB)"))
    fig.update_layout(title="Memory: peak resident set size (Linux) / flash and RAM (MCU)",
                      barmode="group", yaxis_title="MB (RSS) · KB (MCU)", **LAYOUT)
    return fig


def latency_distribution_figure(measurements) -> go.Figure:
    """Box plots of the per-inference samples (subsampled evenly for long runs)."""
    fig = go.Figure()
    unit, factor = time_unit([m.latency.p50_ms for m in measurements])
    per_box = max(50, min(MAX_BOX_SAMPLES, MAX_BOX_SAMPLES_TOTAL // max(1, len(measurements))))
    for m in sorted(measurements, key=lambda m: (m.device, m.variant_id)):
        samples = np.asarray(m.samples_ns, dtype=float) / 1e6 * factor
        if samples.size > per_box:
            samples = np.sort(samples)[np.linspace(0, samples.size - 1, per_box).astype(int)]
        fig.add_trace(go.Box(y=samples, name=f"{esc(m.device)} · {esc(m.variant_id)}",
                             boxpoints="outliers", marker=dict(size=3)))
    fig.update_layout(title="Latency distribution per inference", yaxis_title=unit,
                      showlegend=False, **LAYOUT)
    fig.update_yaxes(type="log")
    return fig


def percentile_figure(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    labels = [f"{esc(r.device)} · {esc(r.variant_id)}" for r in df.itertuples()]
    unit, factor = time_unit(df["p50_ms"])
    for col, name in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        fig.add_trace(go.Bar(x=labels, y=df[col] * factor, name=name))
    fig.update_layout(title="Latency percentiles", barmode="group", yaxis_title=unit, **LAYOUT)
    fig.update_yaxes(type="log")
    return fig
