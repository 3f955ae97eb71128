"""The trade-off report: a decision summary, figures and tables in one self-contained HTML
page, rebuilt from the store."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import HarnessError
from ..frame import measurements_frame
from . import figures, trends
from .axes import time_unit
from .decisions import decision_html, not_measured_html, outcomes_of
from .page import ReportWriteError, render_page, write_page  # noqa: F401 (ReportWriteError: API)
from .profile import profile_section


def page_unit(df) -> tuple[str, float]:
    """The page's one latency unit (chosen on the real devices when there are any: an
    emulated device's slow clock must not push the boards' figures into seconds)."""
    real = df[~df["emulated"].fillna(False).astype(bool)] if "emulated" in df else df
    return time_unit((real if len(real) else df)["p50_ms"])


def build_figures(measurements, df, unit: Optional[str] = None, factor: Optional[float] = None) -> list:
    if unit is None or factor is None:
        unit, factor = page_unit(df)
    positions = {pos: m for pos, m in zip(df.index, measurements)} if len(measurements) == len(df) else {}
    figs = []
    for suffix, part in figures.panels(df):
        figs.append(figures.tradeoff_figure(
            part.assign(p50=part["p50_ms"] * factor), "p50", f"median latency ({unit}, log)",
            f"Accuracy vs median latency{suffix}: Pareto front per device and model (steps; tied variants "
            "share the front)", log_x=True, front_column="pareto_latency", unit=unit, factor=factor))

    def deployed(row) -> str:
        if row.size_bytes == row.storage_bytes:
            return f"stored = deployed: {row.storage_bytes / 1024:.1f} KB"
        return f"stored {row.storage_bytes / 1024:.1f} KB · deployed file {row.size_bytes / 1024:.1f} KB"

    figs.append(figures.tradeoff_figure(
        df.assign(stored_kb=df["storage_bytes"] / 1024), "stored_kb", "stored size (KB, compressed artefact)",
        "Accuracy vs stored size: Pareto front per device and model", front_column="pareto_size",
        unit=unit, factor=factor, extra_hover=deployed))
    figs.append(figures.size_figure(df))
    comparison = figures.device_comparison_figure(df, unit, factor)
    if comparison is not None:
        figs.append(comparison)
    for suffix, part in figures.panels(df):
        figs.append(figures.percentile_figure(part, unit, factor, suffix))
        ms = [positions[p] for p in part.index if p in positions]
        if ms:
            figs.append(figures.latency_distribution_figure(ms, unit, factor, suffix))
    arena = {pos: m.memory.arena_bytes for pos, m in positions.items() if m.memory.arena_bytes is not None}
    figs += figures.memory_figures(df, arena)
    if df["energy_per_inference_j"].notna().any():
        from .energy import energy_figures

        figs.extend(energy_figures(df))
    return figs


def validity_notes(measurements, df) -> list:
    """What a reader must know before trusting a number: invalid measurements with their
    reasons, and each device's noise floor (its A/A control pair where measured)."""
    from .. import decide

    notes = []
    invalid = df[df["verdict"] == "invalid"]
    if len(invalid):
        kinds: dict = {}
        for text in invalid["validity_reasons"]:
            for reason in str(text).split("; "):
                kind = ("contention" if "contention" in reason else "round spread" if "spread" in reason
                        else "frequency" if "frequency" in reason else "throttling" if "firmware" in reason
                        else "stopping rule" if "stopping rule" in reason else "temperature")
                kinds[kind] = kinds.get(kind, 0) + 1
        notes.append(f"{len(invalid)} of {len(df)} measurements are INVALID ("
                     + ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()))
                     + "): their numbers were disturbed by what the harness did not control; the reasons "
                       "are listed below the decision summary and in the table's verdict column")
    floors = decide.noise_floor(measurements)
    for device, floor in sorted(floors.items()):
        has_control = bool(df[(df["device"] == device) & df["is_control"].astype(bool)].shape[0])
        notes.append(f"{device}: latency differences under {100 * floor:.1f}% are reported as ties"
                     + (" (the A/A control pair's false difference or the device's minimum effect, whichever "
                        "is larger)" if has_control else " (the device's validity.min_effect)"))
    return notes


def emulation_notes(measurements) -> list:
    kinds: dict = {}
    for m in measurements:
        if m.emulated:
            kind = ((m.provenance or {}).get("device") or {}).get("emulation") or "guest-time"
            kinds.setdefault(kind, set()).add(m.device)
    notes = []
    for kind, devices in sorted(kinds.items()):
        what = ("instruction-counted guest time: no host load moves it, but it is not a real board's"
                if kind == "guest-time" else
                "wall-clock time of an emulated CPU: many times slower than the real board and moved by the "
                "host's load")
        notes.append(f"Emulated devices ({what}); drawn on their own panels: " + ", ".join(sorted(devices)))
    return notes


def invalid_html(df) -> str:
    import html

    invalid = df[df["verdict"] == "invalid"]
    if not len(invalid):
        return ""
    items = "".join(f"<li><b>{html.escape(r.device)} {html.escape(r.variant_id)}</b>: "
                    f"{html.escape(str(r.validity_reasons))}</li>" for r in invalid.itertuples())
    return (f"<details id='invalid'><summary>{len(invalid)} invalid measurement(s): why</summary>"
            f"<ul>{items}</ul></details>")


def extra_sections(store, measurements, df) -> list:
    """Views placed after the figures (HTML, escaped by their maker)."""
    return [profile_section(measurements)]   # per-operator profiles ('' when none was taken)


def write_report(store, out: Path, run_id: Optional[str] = None, title: str = "Edge benchmark report",
                 manifests: Optional[dict] = None, assets: Optional[Path] = None) -> Path:
    """Render the measurements of one run (or all runs) from the store into `out`.
    `manifests` ({name: Manifest}) give the decision summary the accuracy budgets;
    `assets`: a folder plotly.js is written to once and loaded from (default: inlined)."""
    from ..recommend import recommend
    from .system import system_html
    from .table import table_html

    measurements = store.measurements(run_id=run_id)
    if not measurements:
        scope = f"run {run_id}" if run_id else "the store"
        raise HarnessError(f"no measurements in {scope}; nothing to report")
    df = measurements_frame(measurements)
    all_runs = store.runs()
    runs = {r["id"]: r for r in all_runs}
    meta = []
    for rid in sorted(set(df["run_id"].dropna())):
        r = runs.get(rid, {})
        meta.append(f"run {rid} · started {r.get('started_at', '?')} · git {r.get('git_commit') or 'unknown'}"
                    f" · harness {r.get('harness_version', '?')}" + (f" · tag {r['tag']}" if r.get("tag") else ""))
    unit, factor = page_unit(df)
    meta.append(f"{len(df)} measurements on {df['device'].nunique()} device(s): "
                + ", ".join(sorted(df["device"].unique())) + f" · latency in {unit} throughout")
    notes = emulation_notes(measurements) + validity_notes(measurements, df)
    figs = build_figures(measurements, df, unit, factor)
    trend = trends.trend_frame(store.trend_rows(devices=df["device"].unique()), df["device"].unique(),
                               df["variant_id"].unique())
    if trends.has_history(trend):
        emulated = frozenset(df.loc[df["emulated"].fillna(False).astype(bool), "device"])
        figs.append(trends.trend_figure(trend, highlight_run=run_id, unit=unit, factor=factor, emulated=emulated))
    run_ids = set(df["run_id"].dropna())
    outcomes = outcomes_of(all_runs, run_ids)
    sections = [decision_html(recommend(measurements, outcomes, manifests)), invalid_html(df),
                not_measured_html(all_runs, run_ids),
                trends.regressions_html(store.comparisons(sorted(run_ids)))]
    page = render_page(title, meta, notes, figs, df, sections=sections,
                       table=table_html(df, measurements, unit, factor),
                       after_figures=tuple(extra_sections(store, measurements, df)),
                       closing=(system_html(measurements),), out_path=out, assets=assets)
    return write_page(out, page)


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
    unit, factor = page_unit(df)
    figs = build_figures(measurements, df, unit, factor)
    trend = trends.trend_frame(store.trend_rows(devices=df["device"].unique()), df["device"].unique(),
                               df["variant_id"].unique())
    if trends.has_history(trend):
        figs.append(trends.trend_figure(trend, highlight_run=run_id, unit=unit, factor=factor))
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
