"""Energy figures of the report: accuracy against energy per inference (Pareto front per
device and model) and energy per inference per device and variant (gross and net)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .figures import LAYOUT, esc, tradeoff_figure

MJ = 1e3  # plotted in millijoules: edge inferences are µJ..J, mJ reads best


def energy_pareto_figure(df: pd.DataFrame, column: str = "energy_per_inference_j") -> go.Figure:
    """Accuracy vs energy per inference: labelled points, the front as a step (figures.tradeoff_figure)."""
    data = df.dropna(subset=[column]).assign(energy_mj=lambda d: d[column] * MJ)
    has_net = "net_energy_per_inference_j" in data

    def net(row) -> str:
        value = getattr(row, "net_energy_per_inference_j", None) if has_net else None
        text = f"energy/inference: {getattr(row, column) * MJ:.4g} mJ"
        return text + (f"<br>net of idle: {value * MJ:.4g} mJ" if value is not None and pd.notna(value) else "")

    return tradeoff_figure(data, "energy_mj", "energy per inference (mJ, log)",
                           "Accuracy vs energy per inference, Pareto front per device and model", log_x=True,
                           extra_hover=net)


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
