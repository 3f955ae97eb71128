"""Energy figures of the report: accuracy against energy per inference (Pareto front per
device and model) and energy per inference per device and variant (gross and net)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .figures import LAYOUT, esc
from .pareto import pareto_mask

MJ = 1e3  # plotted in millijoules: edge inferences are µJ..J, mJ reads best


def energy_pareto_figure(df: pd.DataFrame, column: str = "energy_per_inference_j") -> go.Figure:
    """Accuracy vs energy per inference; front points are diamonds joined by a dashed line."""
    fig = go.Figure()
    data = df.dropna(subset=[column, "accuracy"])
    for (device, model), group in data.groupby(["device", "model"], sort=True):
        group = group.sort_values(column)
        front = np.array(pareto_mask(list(group[column]), list(group["accuracy"])))
        name = f"{esc(device)} · {esc(model)}"
        net = group["net_energy_per_inference_j"] if "net_energy_per_inference_j" in group else None
        hover = []
        for i, r in enumerate(group.itertuples()):
            text = (f"<b>{esc(r.variant)}</b><br>{esc(device)}<br>energy/inference: "
                    f"{getattr(r, column) * MJ:.4g} mJ")
            if net is not None and pd.notna(net.iloc[i]):
                text += f"<br>net of idle: {net.iloc[i] * MJ:.4g} mJ"
            hover.append(text + f"<br>top-1: {100 * r.accuracy:.2f}%")
        fig.add_trace(go.Scatter(
            x=group[column] * MJ, y=group["accuracy"] * 100, mode="markers", name=name,
            legendgroup=name, hovertext=hover, hoverinfo="text",
            marker=dict(size=np.where(front, 14, 8), line=dict(width=np.where(front, 2, 0), color="black"),
                        symbol=["diamond" if f else "circle" for f in front])))
        fx = group[front]
        fig.add_trace(go.Scatter(x=fx[column] * MJ, y=fx["accuracy"] * 100, mode="lines",
                                 name=f"Pareto front · {name}", legendgroup=name,
                                 line=dict(dash="dash", width=1.5), hoverinfo="skip"))
    fig.update_layout(title="Accuracy vs energy per inference, Pareto front per device and model",
                      xaxis_title="energy per inference (mJ)", yaxis_title="top-1 accuracy (%)", **LAYOUT)
    fig.update_xaxes(type="log")
    return fig


def energy_bar_figure(df: pd.DataFrame) -> go.Figure:
    """Energy per inference per device (x) and variant (one bar each); net of idle beside
    the gross figure where an idle baseline was measured."""
    fig = go.Figure()
    data = df.dropna(subset=["energy_per_inference_j"])
    has_net = "net_energy_per_inference_j" in data and data["net_energy_per_inference_j"].notna().any()
    for variant, group in data.groupby("variant", sort=True):
        group = group.sort_values("device")
        x = [esc(d) for d in group["device"]]
        fig.add_trace(go.Bar(x=x, y=group["energy_per_inference_j"] * MJ, name=f"{esc(variant)} (gross)",
                             legendgroup=esc(variant), offsetgroup=f"{esc(variant)}-gross"))
        if has_net:
            fig.add_trace(go.Bar(x=x, y=group["net_energy_per_inference_j"] * MJ,
                                 name=f"{esc(variant)} (net of idle)", legendgroup=esc(variant),
                                 offsetgroup=f"{esc(variant)}-net", marker_pattern_shape="/"))
    fig.update_layout(title="Energy per inference per device and variant", barmode="group",
                      xaxis_title="device", yaxis_title="energy per inference (mJ)", **LAYOUT)
    fig.update_yaxes(type="log")
    return fig


def energy_figures(df: pd.DataFrame) -> list:
    """The report's energy figures; none when no measurement carries energy."""
    if "energy_per_inference_j" not in df or not df["energy_per_inference_j"].notna().any():
        return []
    return [energy_pareto_figure(df), energy_bar_figure(df)]
