"""The report's plotly figures, from the measurements DataFrame.

Every point carries its variant's name as text; hover adds model, device, technique and the
interval. Pareto fronts are drawn as steps (the best accuracy reachable at each cost), and a
one-point front is still a visible corner. Latency is in one unit for the whole page, on log
axes ticked at 1, 2, 5 x 10^k. Emulated devices get their own panels (their latency is guest
time or an emulated CPU's wall clock, not a board's) and "(emulated)" wherever they are named.
Linux memory (MB) and MCU memory (KB) never share an axis.

Plotly renders trace names, hover text and tick labels as (a subset of) HTML, so every
name that comes from a user (device, model, variant) is escaped before it goes in.
"""
from __future__ import annotations

import html
import math
from typing import Optional

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from .axes import log_ticks
from .pareto import pareto_mask

MAX_BOX_SAMPLES = 400  # per measurement: evenly spaced order statistics keep the box's shape
MAX_BOX_SAMPLES_TOTAL = 40_000  # over the figure: a report of a lab's whole history stays small
LAYOUT = dict(template="plotly_white", height=480, margin=dict(l=60, r=20, t=70, b=60),
              legend=dict(orientation="v"))
ACCURACY_BAND_PT = 5.0   # the accuracy axis shows this band under the best when few points fall below it

PALETTE = plotly.colors.qualitative.Plotly


def esc(value) -> str:
    """A name as plotly text: '<' and '&' escaped, so no tag forms; quotes left as they are
    (plotly's pseudo-HTML would show '&quot;' literally, and no attribute can open)."""
    return html.escape(str(value), quote=False)


def device_label(device, emulated) -> str:
    """A device's name as every figure shows it (escaped; emulated ones marked)."""
    return esc(device) + (" (emulated)" if emulated else "")


def panels(df: pd.DataFrame) -> list:
    """[(suffix, rows)]: real devices first, emulated ones on their own panel."""
    if "emulated" not in df or df.empty:
        return [("", df)]
    emulated = df["emulated"].fillna(False).astype(bool)
    out = [("", df[~emulated])] if (~emulated).any() else []
    if emulated.any():
        out.append((" · emulated devices", df[emulated]))
    return out


def _sig(value, digits: int = 4):
    return None if value is None or not math.isfinite(value) else float(f"{value:.{digits}g}")


def _interval(row, factor: float, unit: str) -> str:
    low, high = getattr(row, "ci_low_ms", None), getattr(row, "ci_high_ms", None)
    p50 = getattr(row, "p50_ms", None)
    if p50 is None or pd.isna(p50):
        return ""
    text = f"p50 {p50 * factor:.3g} {unit}"
    if low is not None and high is not None and pd.notna(low) and pd.notna(high):
        text += f" [{low * factor:.3g}–{high * factor:.3g}] (95% interval)"
    return text


def hover_text(row, unit: str, factor: float, extra: str = "") -> str:
    """What a point says on hover: variant, model, device, technique, latency with interval."""
    parts = [f"<b>{esc(row.variant)}</b>", f"model {esc(row.model)}",
             f"device {device_label(row.device, bool(getattr(row, 'emulated', False)))}"]
    if getattr(row, "technique", None):
        parts.append(f"technique {esc(row.technique)}")
    latency = _interval(row, factor, unit)
    if latency:
        parts.append(latency)
    if extra:
        parts.append(extra)
    if getattr(row, "accuracy", None) is not None and pd.notna(row.accuracy):
        parts.append(f"top-1 {100 * row.accuracy:.2f}%")
    if getattr(row, "vs_fp32", None):
        parts.append(f"vs fp32: {esc(row.vs_fp32)}")
    if getattr(row, "verdict", "valid") == "invalid":
        parts.append("<b>INVALID</b>")
    return "<br>".join(parts)


def step_front(xs, ys, x_span: tuple, log_x: bool) -> tuple[list, list]:
    """The staircase of a Pareto front (cost xs, accuracy ys, any order) for line_shape 'hv':
    from below the cheapest front point up to it, then at each cost the best accuracy reached
    so far, out to the right edge of the data. One point is a corner, never a lone marker."""
    pts = sorted(zip(xs, ys))
    if not pts:
        return [], []
    x_low, x_high = x_span
    right = max(x_high, pts[-1][0])
    if right <= pts[-1][0]:   # one cost only: reach past it so the corner shows
        right = pts[-1][0] * 1.3 if log_x else pts[-1][0] + max(abs(pts[-1][0]) * 0.1, 1e-9)
    floor = min(y for _, y in pts)
    floor = floor - max(0.5, 0.02 * abs(floor)) if len(pts) == 1 else floor - 0.25
    fx, fy = [pts[0][0]], [floor]
    best = -math.inf
    for x, y in pts:
        if y > best:
            fx.append(x)
            fy.append(y)
            best = y
    fx.append(right)
    fy.append(best)
    return fx, fy


def tradeoff_figure(df: pd.DataFrame, x: str, x_title: str, title: str, log_x: bool = False,
                    front_column: Optional[str] = None, unit: str = "ms", factor: float = 1.0,
                    extra_hover=None) -> go.Figure:
    """Accuracy against a cost, one colour per device and model, every point labelled with
    its variant, the Pareto front drawn as a step (per device and model: a variant trades
    against its siblings on the same board).

    `front_column`: the front decided under the tie rules (harness.frame: tied variants
    stay on it together); without it, a plain Pareto of the point estimates.
    `extra_hover(row) -> str`: more hover text (e.g. the deployed size beside the stored)."""
    fig = go.Figure()
    data = df.dropna(subset=[x, "accuracy"])
    if "is_control" in data:
        data = data[~data["is_control"].fillna(False).astype(bool)]   # the A/A twin is not a choice
    x_all = data[x].to_numpy(dtype=float)
    span = (float(x_all.min()), float(x_all.max())) if len(x_all) else (0.0, 0.0)
    for i, ((device, model), group) in enumerate(data.groupby(["device", "model"], sort=True)):
        colour = PALETTE[i % len(PALETTE)]
        group = group.sort_values([x, "accuracy"])
        front = (group[front_column].fillna(False).astype(bool).to_numpy() if front_column
                 else np.array(pareto_mask(list(group[x]), list(group["accuracy"]))))
        emulated = bool(group["emulated"].fillna(False).astype(bool).any()) if "emulated" in group else False
        name = f"{device_label(device, emulated)} · {esc(model)}"
        hover = [hover_text(r, unit, factor, extra_hover(r) if extra_hover else "") for r in group.itertuples()]
        # alternate labels above and below along the cost axis: neighbours do not overprint
        positions = ["top center" if k % 2 == 0 else "bottom center" for k in range(len(group))]
        fig.add_trace(go.Scatter(
            x=[_sig(v) for v in group[x]], y=[_sig(v) for v in group["accuracy"] * 100], mode="markers+text",
            name=name, legendgroup=name, hovertext=hover, hoverinfo="text",
            text=[esc(v) for v in group["variant"]], textposition=positions,
            textfont=dict(size=10, color=colour), cliponaxis=False,
            marker=dict(size=np.where(front, 13, 8).tolist(),
                        line=dict(width=np.where(front, 2, 0).tolist(), color="black"),
                        color=colour, symbol=["diamond" if f else "circle" for f in front])))
        fx, fy = step_front(group[x][front].tolist(), (group["accuracy"][front] * 100).tolist(), span, log_x)
        fig.add_trace(go.Scatter(
            x=[_sig(v) for v in fx], y=[_sig(v) for v in fy], mode="lines", name=f"Pareto front · {name}",
            legendgroup=name, line=dict(dash="dash", width=1.5, color=colour, shape="hv"),
            hoverinfo="skip", showlegend=False))
    if data.empty:
        # an empty chart says why, rather than showing bare axes
        fig.add_annotation(text="nothing to plot: no measurement here has a top-1 accuracy (the manifests "
                                "declare no labelled dataset); see the agreement column and the table",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="top-1 accuracy (%)", **LAYOUT)
    _zoom_accuracy(fig, data)
    if log_x:
        ticks = log_ticks(x_all)
        fig.update_xaxes(**ticks) if ticks else fig.update_xaxes(type="log")
    return fig


def _zoom_accuracy(fig: go.Figure, data: pd.DataFrame) -> None:
    """A few far-off points (a lossy variant at 80 %) would squash the band where the choice
    is made: show the band under the best, and name the points below it on the chart (the
    modebar's autoscale shows them)."""
    if data.empty:
        return
    acc = data["accuracy"] * 100
    top = float(acc.max())
    floor = top - ACCURACY_BAND_PT
    below = data[acc < floor]
    if not len(below) or len(below) > len(data) // 3:
        return
    fig.update_yaxes(range=[floor - 0.3, top + 0.5])
    fig.update_traces(cliponaxis=True)
    names = ", ".join(f"{esc(r.variant)} {100 * r.accuracy:.1f}%" for r in below.sort_values("accuracy").itertuples())
    fig.add_annotation(text=f"below {floor:.1f}%, off this axis (autoscale shows them): {names}", showarrow=False,
                       xref="paper", yref="paper", x=0.0, y=0.0, xanchor="left", yanchor="bottom",
                       font=dict(size=11, color="#a33"), bgcolor="rgba(255,255,255,0.8)")


def _category(group: pd.DataFrame) -> list:
    """x labels: the variant, with the device when the figure holds more than one and the run
    when it holds more than one (a history report: one bar per run, never two stacked)."""
    runs = "run_id" in group and group["run_id"].nunique() > 1
    labels = []
    for r in group.itertuples():
        label = esc(r.variant_id) if group["device"].nunique() == 1 else \
            f"{device_label(r.device, bool(r.emulated))} · {esc(r.variant_id)}"
        labels.append(f"{label} · run {esc(str(r.run_id)[:6])}" if runs else label)
    return labels


def _on(group: pd.DataFrame) -> str:
    """' on DEVICE' for a figure of one device (its x labels then omit it)."""
    if group["device"].nunique() != 1:
        return ""
    return f" on {device_label(group['device'].iloc[0], bool(group['emulated'].fillna(False).astype(bool).any()))}"


def percentile_figure(df: pd.DataFrame, unit: str, factor: float, suffix: str = "") -> go.Figure:
    fig = go.Figure()
    df = df.sort_values(["device", "variant_id"])
    labels = _category(df)
    values = []
    for col, name in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        y = [_sig(v * factor) if pd.notna(v) else None for v in df[col]]
        values += [v for v in y if v]
        fig.add_trace(go.Bar(x=labels, y=y, name=name))
    fig.update_layout(title=f"Latency percentiles{_on(df)}{suffix}", barmode="group", yaxis_title=f"latency ({unit})",
                      **LAYOUT)
    ticks = log_ticks(values)
    if ticks:
        fig.update_yaxes(**ticks)
    return fig


def latency_distribution_figure(measurements, unit: str, factor: float, suffix: str = "") -> go.Figure:
    """Box plots of the per-inference samples (evenly spaced order statistics of long runs)."""
    fig = go.Figure()
    per_box = max(50, min(MAX_BOX_SAMPLES, MAX_BOX_SAMPLES_TOTAL // max(1, len(measurements))))
    values = []
    one_device = len({m.device for m in measurements}) == 1
    many_runs = len({m.run_id for m in measurements}) > 1
    for m in sorted(measurements, key=lambda m: (m.device, m.variant_id)):
        samples = np.asarray(m.samples_ns, dtype=float) / 1e6 * factor
        if samples.size > per_box:
            samples = np.sort(samples)[np.linspace(0, samples.size - 1, per_box).astype(int)]
        samples = [_sig(v) for v in samples]
        values += samples[:1] + samples[-1:]
        name = esc(m.variant_id) if one_device else f"{device_label(m.device, m.emulated)} · {esc(m.variant_id)}"
        fig.add_trace(go.Box(y=samples, name=f"{name} · run {esc(str(m.run_id)[:6])}" if many_runs else name,
                             boxpoints="outliers", marker=dict(size=3)))
    on = f" on {device_label(measurements[0].device, measurements[0].emulated)}" if one_device and measurements else ""
    fig.update_layout(title=f"Latency distribution per inference{on}{suffix}", yaxis_title=f"latency ({unit})",
                      showlegend=False, **LAYOUT)
    ticks = log_ticks(values)
    if ticks:
        fig.update_yaxes(**ticks)
    return fig


def memory_figures(df: pd.DataFrame, arena_bytes: dict) -> list:
    """Linux devices in MB: the model's own growth (RSS growth over load and init; the
    runtime's arena where reported) beside the process's peak; MCUs in KB: flash and RAM.
    `arena_bytes`: {row of df: bytes}."""
    figs = []
    linux = df[df["peak_rss_kb"].notna() | df["load_growth_kb"].notna()].sort_values(["device", "variant_id"])
    if len(linux):
        fig = go.Figure()
        x = _category(linux)
        arena = [arena_bytes.get(i) for i in linux.index]
        fig.add_trace(go.Bar(x=x, y=[_sig(v / 1024) if pd.notna(v) else None for v in linux["load_growth_kb"]],
                             name="model load growth (RSS after init - before load)"))
        if any(a is not None for a in arena):
            fig.add_trace(go.Bar(x=x, y=[_sig(a / 1024 ** 2) if a is not None else None for a in arena],
                                 name="runtime arena"))
        fig.add_trace(go.Bar(x=x, y=[_sig(v / 1024) if pd.notna(v) else None for v in linux["peak_rss_kb"]],
                             name="process peak RSS (runner, runtime and model)", opacity=0.45))
        fig.update_layout(title=f"Memory{_on(linux) or ' on Linux devices'}: the model's own growth beside the process peak",
                          barmode="group", yaxis_title="MB", **LAYOUT)
        figs.append(fig)
    mcu = df[df["flash_bytes"].notna() | df["ram_bytes"].notna()].sort_values(["device", "variant_id"])
    if len(mcu):
        fig = go.Figure()
        x = _category(mcu)
        fig.add_trace(go.Bar(x=x, y=[_sig(v / 1024) if pd.notna(v) else None for v in mcu["flash_bytes"]],
                             name="flash (text + rodata)"))
        fig.add_trace(go.Bar(x=x, y=[_sig(v / 1024) if pd.notna(v) else None for v in mcu["ram_bytes"]],
                             name="RAM (data + bss + stack)"))
        fig.update_layout(title=f"Memory{_on(mcu) or ' on microcontrollers'}: flash and RAM (KB)", barmode="group",
                          yaxis_title="KB",
                          **LAYOUT)
        figs.append(fig)
    return figs


def size_figure(df: pd.DataFrame) -> go.Figure:
    """Stored size (the compressed artefact) beside the deployed file, per variant."""
    fig = go.Figure()
    rows = df.drop_duplicates(["model", "variant"]).sort_values(["model", "storage_bytes"])
    x = [f"{esc(r.model)} · {esc(r.variant)}" for r in rows.itertuples()]
    fig.add_trace(go.Bar(x=x, y=[_sig(v / 1024) for v in rows["storage_bytes"]], name="stored (compressed artefact)"))
    fig.add_trace(go.Bar(x=x, y=[_sig(v / 1024) for v in rows["size_bytes"]], name="deployed file", opacity=0.5))
    fig.update_layout(title="Model size: stored (what compression saves) beside the deployed file",
                      barmode="group", yaxis_title="KB", **LAYOUT)
    return fig


def device_comparison_figure(df: pd.DataFrame, unit: str, factor: float) -> Optional[go.Figure]:
    """The same variants across devices: median latency with its interval, one bar per
    device. None when no variant was measured on two devices."""
    data = df[~df["is_control"].fillna(False).astype(bool)] if "is_control" in df else df
    shared = data.groupby("variant_id")["device"].nunique()
    shared = set(shared[shared >= 2].index)
    if not shared:
        return None
    data = data[data["variant_id"].isin(shared)].drop_duplicates(["device", "variant_id"], keep="last")
    fig = go.Figure()
    values = []
    for (device, emulated), group in data.groupby(["device", data["emulated"].fillna(False).astype(bool)],
                                                  sort=True):
        group = group.sort_values("variant_id")
        y = [_sig(v * factor) for v in group["p50_ms"]]
        plus = [_sig((h - p) * factor) if pd.notna(h) else 0 for h, p in zip(group["ci_high_ms"], group["p50_ms"])]
        minus = [_sig((p - lo) * factor) if pd.notna(lo) else 0 for lo, p in zip(group["ci_low_ms"], group["p50_ms"])]
        values += y
        fig.add_trace(go.Bar(x=[esc(v) for v in group["variant_id"]], y=y, name=device_label(device, emulated),
                             error_y=dict(type="data", array=plus, arrayminus=minus, visible=True),
                             marker_pattern_shape="/" if emulated else ""))
    fig.update_layout(title="The same variants across devices: median latency (95% interval)",
                      barmode="group", yaxis_title=f"median latency ({unit})", **LAYOUT)
    ticks = log_ticks(values)
    if ticks:
        fig.update_yaxes(**ticks)
    return fig
