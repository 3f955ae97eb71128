"""The trade-off report: figures and one self-contained HTML page, rebuilt from the store."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import HarnessError
from ..frame import measurements_frame
from . import figures, trends
from .page import render_page, write_page


def build_figures(measurements, df) -> list:
    unit, factor = figures.time_unit(df["p50_ms"])
    figs = [
        figures.tradeoff_figure(df.assign(p50=df["p50_ms"] * factor), "p50", f"median latency ({unit})",
                                "Accuracy vs latency (median), Pareto front per device and model", log_x=True),
        figures.tradeoff_figure(df.assign(size_kb=df["size_bytes"] / 1024), "size_kb", "model file size (KB)",
                                "Accuracy vs model size, Pareto front per device and model"),
        figures.percentile_figure(df),
        figures.latency_distribution_figure(measurements),
        figures.memory_figure(df),
    ]
    if df["energy_per_inference_j"].notna().any():
        from .energy import energy_figures

        figs.extend(energy_figures(df))
    return figs


def write_report(store, out: Path, run_id: Optional[str] = None, title: str = "Edge benchmark report") -> Path:
    """Render the measurements of one run (or all runs) from the store into `out`."""
    measurements = store.measurements(run_id=run_id)
    if not measurements:
        scope = f"run {run_id}" if run_id else "the store"
        raise HarnessError(f"no measurements in {scope}; nothing to report")
    df = measurements_frame(measurements)
    runs = {r["id"]: r for r in store.runs()}
    meta = []
    for rid in sorted(set(df["run_id"].dropna())):
        r = runs.get(rid, {})
        meta.append(f"run {rid} · started {r.get('started_at', '?')} · git {r.get('git_commit') or 'unknown'}"
                    f" · harness {r.get('harness_version', '?')}" + (f" · tag {r['tag']}" if r.get("tag") else ""))
    meta.append(f"{len(df)} measurements on {df['device'].nunique()} device(s): "
                + ", ".join(sorted(df["device"].unique())))
    notes = []
    emulated = sorted(df.loc[df["emulated"].astype(bool), "device"].unique())
    if emulated:
        notes.append("Emulated timings (instruction-counted guest time, not a real board): "
                     + ", ".join(emulated))
    figs = build_figures(measurements, df)
    trend = trends.trend_frame(store.trend_rows(devices=df["device"].unique()), df["device"].unique(),
                               df["variant_id"].unique())
    if trends.has_history(trend):
        figs.append(trends.trend_figure(trend, highlight_run=run_id))
    sections = [trends.regressions_html(store.comparisons(sorted(set(df["run_id"].dropna()))))]
    return write_page(out, render_page(title, meta, notes, figs, df, sections=sections))


def write_static(store, folder: Path, fmt: str = "png", run_id: Optional[str] = None) -> list:
    """Every figure of the report as a static PNG or SVG (kaleido 1.x drives Chromium)."""
    measurements = store.measurements(run_id=run_id)
    if not measurements:
        raise HarnessError(f"no measurements in {'run ' + run_id if run_id else 'the store'}; nothing to export")
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise HarnessError("--static needs kaleido: pip install kaleido (and a Chromium: apt-get install "
                           "chromium)") from None
    df = measurements_frame(measurements)
    figs = build_figures(measurements, df)
    trend = trends.trend_frame(store.trend_rows(devices=df["device"].unique()), df["device"].unique(),
                               df["variant_id"].unique())
    if trends.has_history(trend):
        figs.append(trends.trend_figure(trend, highlight_run=run_id))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"figure-{i}.{fmt}" for i in range(len(figs))]
    import plotly.io as pio

    try:
        # one browser for every figure (write_image would start Chromium once per figure)
        pio.write_images(figs, [str(p) for p in paths], format=fmt, width=1200, height=480)
    except Exception as exc:
        raise HarnessError(f"static export failed: {exc} (kaleido 1.x needs Chromium: "
                           f"apt-get install chromium)") from None
    return paths
