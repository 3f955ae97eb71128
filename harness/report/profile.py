"""The report's per-operator section: where each variant's time goes, against the roofline.

Per device: a stacked bar of time by operator type per variant, each variant's top operators
with their share and % of the measured peak, the roofline chart (operators and variants
against the measured compute and bandwidth roofs, a datasheet peak dashed beside them), and
for two variants of one model the per-op-type difference (where int8-dynamic lost its time).
A variant whose runtime cannot time its operators is listed with the reason, never as an
empty table. Everything comes from the stored measurements (harness.profile documents).
"""
from __future__ import annotations

import html

import plotly.graph_objects as go

from .. import profile as profiles
from ..decide import CONTROL_VARIANT
from .figures import LAYOUT, PALETTE, esc

TOP_OPS = 5
MAX_OP_TYPES = 8          # the stacked bar's op types; the rest are "other"


def _fig_html(fig: go.Figure, div_id: str) -> str:
    return (f"<div class='figure'>" + fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                                 config={"displaylogo": False, "responsive": True}) + "</div>")


def time_by_op_type_figure(device: str, ms: list) -> go.Figure:
    """One stacked bar per variant: mean time per inference of each operator type."""
    totals: dict = {}
    per_variant = [(m.variant_id, profiles.by_op_type(m.profile)) for m in ms]
    for _, types in per_variant:
        for k, v in types.items():
            totals[k] = totals.get(k, 0.0) + v
    kept = sorted(totals, key=lambda k: -totals[k])[:MAX_OP_TYPES]
    fig = go.Figure()
    x = [esc(v) for v, _ in per_variant]
    for i, op_type in enumerate(kept + ["other"]):
        y = [types.get(op_type, 0.0) if op_type != "other" else sum(t for k, t in types.items() if k not in kept)
             for _, types in per_variant]
        if any(y):
            fig.add_bar(x=x, y=y, name=esc(op_type), marker_color=PALETTE[i % len(PALETTE)],
                        hovertemplate="%{x}<br>" + esc(op_type) + ": %{y:.2f} us<extra></extra>")
    fig.update_layout(**LAYOUT, barmode="stack", title=f"{esc(device)}: time per inference by operator type "
                      "(profiled pass)", yaxis_title="us per inference (operators' kernels)")
    return fig


def roofline_figure(device: str, ms: list) -> go.Figure:
    """Achieved MAC/s against arithmetic intensity, log-log, under the measured roofs."""
    fig = go.Figure()
    peak = next(m.profile["peak"] for m in ms if m.profile.get("peak"))
    xs = [o["intensity"] for m in ms for o in m.profile["roofline"]["ops"] if o["intensity"]]
    xs += [m.profile["roofline"]["variant"]["intensity"] for m in ms if m.profile["roofline"]["variant"]["intensity"]]
    lo, hi = (min(xs) / 4, max(xs) * 4) if xs else (0.01, 100.0)
    if peak.get("bytes_per_s"):
        hi = max(hi, 4 * max(peak["macs_per_s"].values()) / peak["bytes_per_s"])   # the ridge point in view
    grid = [lo * (hi / lo) ** (i / 60) for i in range(61)]
    roofs = [("measured", peak["macs_per_s"], peak.get("bytes_per_s"), "solid")]
    sheet = peak.get("datasheet")
    if sheet and sheet.get("bytes_per_s") and sheet.get("macs_per_s"):
        roofs.append((f"datasheet ({sheet.get('source', 'datasheet')})", sheet["macs_per_s"], sheet["bytes_per_s"],
                      "dash"))
    for label, compute, bandwidth, dash in roofs:
        for dtype, rate in sorted(compute.items()):
            fig.add_scatter(x=grid, y=[min(rate, i * bandwidth) if bandwidth else rate for i in grid], mode="lines",
                            name=esc(f"{label} roof {dtype}"), line=dict(dash=dash, color="#888" if dtype == "fp32"
                                                                       else "#c44"), hoverinfo="skip")
    for i, m in enumerate(ms):
        colour = PALETTE[i % len(PALETTE)]
        ops = [o for o in m.profile["roofline"]["ops"] if o["intensity"] and o["achieved_macs_per_s"]]
        if ops:
            fig.add_scatter(x=[o["intensity"] for o in ops], y=[o["achieved_macs_per_s"] for o in ops], mode="markers",
                            marker=dict(size=7, color=colour, opacity=0.6), name=esc(f"{m.variant_id} operators"),
                            text=[esc(f"{o['name']} ({o['op_type']}): {o['pct_of_peak']:.3g}% of peak") for o in ops],
                            hovertemplate="%{text}<extra></extra>")
        v = m.profile["roofline"]["variant"]
        if v["intensity"] and v["achieved_macs_per_s"]:
            fig.add_scatter(x=[v["intensity"]], y=[v["achieved_macs_per_s"]], mode="markers",
                            marker=dict(size=14, color=colour, symbol="diamond", line=dict(width=1, color="#000")),
                            name=esc(f"{m.variant_id} whole"),
                            text=[esc(f"{m.variant_id}: {v['pct_of_peak']:.3g}% of peak")],
                            hovertemplate="%{text}<extra></extra>")
    fig.update_layout(**LAYOUT, title=f"{esc(device)}: roofline (measured peak)",
                      xaxis=dict(type="log", title="arithmetic intensity (MACs per byte moved)"),
                      yaxis=dict(type="log", title="achieved MAC/s"))
    return fig


def _pct(value) -> str:
    return "–" if value is None else f"{value:.3g}"


def top_ops_html(m) -> str:
    prof = m.profile
    roof = {o["name"]: o for o in (prof.get("roofline") or {}).get("ops", [])}
    rows = "".join(
        f"<tr><td>{html.escape(op['name'])}</td><td>{html.escape(op['op_type'])}</td>"
        f"<td>{op['time_us']:.2f}</td><td>{100 * op['share']:.1f}</td>"
        f"<td>{_pct(roof.get(op['name'], {}).get('pct_of_peak'))}</td></tr>"
        for op in profiles.top_ops(prof, TOP_OPS))
    v = (prof.get("roofline") or {}).get("variant") or {}
    overhead = "–" if prof.get("overhead") is None else f"{100 * prof['overhead']:+.0f}%"
    return (f"<h4>{html.escape(m.variant_id)}</h4><p class='meta'>{prof['total_us']:.4g} us per profiled inference "
            f"({prof['runs']} runs), operators cover {100 * prof['coverage']:.0f}% of it, profiler overhead "
            f"{overhead}; whole variant {_pct(v.get('pct_of_peak'))}% of the measured peak</p>"
            "<table class='verdicts'><tr><th>operator</th><th>type</th><th>us</th><th>share %</th>"
            f"<th>% of peak</th></tr>{rows}</table>")


def difference_html(a, b) -> str:
    rows = "".join(f"<tr><td>{html.escape(r['op_type'])}</td><td>{r['a_us']:.2f}</td><td>{r['b_us']:.2f}</td>"
                   f"<td>{r['diff_us']:+.2f}</td></tr>" for r in profiles.op_type_difference(a.profile, b.profile))
    return (f"<h4>{html.escape(b.variant_id)} against {html.escape(a.variant)}: time by operator type</h4>"
            f"<table class='verdicts'><tr><th>op type</th><th>{html.escape(a.variant)} us</th>"
            f"<th>{html.escape(b.variant)} us</th><th>difference us</th></tr>{rows}</table>")


def profile_section(measurements: list) -> str:
    """The whole section ('' when no measurement of the run was profiled)."""
    profiled = [m for m in measurements if m.profile is not None and m.variant != CONTROL_VARIANT]
    if not profiled:
        return ""
    parts = ["<h2 id='profiles'>Where the time goes: per-operator profiles</h2>"]
    for d, device in enumerate(sorted({m.device for m in profiled})):
        ms = sorted((m for m in profiled if m.device == device), key=lambda m: m.variant_id)
        shown = [m for m in ms if profiles.offered(m.profile)]
        parts.append(f"<h3>{html.escape(device)}</h3>")
        for m in ms:
            if not profiles.offered(m.profile):
                parts.append(f"<p class='note'>{html.escape(m.variant_id)}: per-operator profile not offered: "
                             f"{html.escape(m.profile.get('reason', ''))}</p>")
        if not shown:
            continue
        parts.append(_fig_html(time_by_op_type_figure(device, shown), f"profile-{d}-bytype"))
        if any(m.profile.get("roofline") for m in shown):
            parts.append(_fig_html(roofline_figure(device, [m for m in shown if m.profile.get("roofline")]),
                                   f"profile-{d}-roofline"))
        parts += [top_ops_html(m) for m in shown]
        for model in sorted({m.model for m in shown}):
            siblings = [m for m in shown if m.model == model]
            base = next((m for m in siblings if m.variant == "fp32"), siblings[0])
            parts += [difference_html(base, m) for m in siblings if m is not base]
    return "".join(parts)
