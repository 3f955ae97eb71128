"""The trade-off report: figures and one self-contained HTML page, rebuilt from the store."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import HarnessError
from ..frame import measurements_frame
from . import figures, trends
from .page import ReportWriteError, render_page, write_page  # noqa: F401 (ReportWriteError: API)
from .profile import profile_section


def build_figures(measurements, df) -> list:
    unit, factor = figures.time_unit(df["p50_ms"])
    figs = [
        figures.tradeoff_figure(df.assign(p50=df["p50_ms"] * factor), "p50", f"median latency ({unit})",
                                "Accuracy vs latency (median), Pareto front per device and model "
                                "(tied variants share the front)", log_x=True, front_column="pareto_latency"),
        figures.tradeoff_figure(df.assign(size_kb=df["storage_bytes"] / 1024), "size_kb", "stored size (KB)",
                                "Accuracy vs stored size, Pareto front per device and model",
                                front_column="pareto_size"),
        figures.percentile_figure(df),
        figures.latency_distribution_figure(measurements),
        figures.memory_figure(df),
    ]
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


def decision_html(measurements, outcomes: dict, manifests: Optional[dict]) -> str:
    """The summary a person reads first: per device and model, what to deploy and why."""
    import html

    from ..recommend import recommend

    rows = []
    for rec in recommend(measurements, outcomes, manifests):
        best = "; ".join(f"{k}: {html.escape(v)}" for k, v in rec.best.items())
        # the short form (the full reasons are in the invalid list and the table)
        excluded = "; ".join(f"{html.escape(v)}: {html.escape(w.split(':')[0])}"
                             for v, w in sorted(rec.excluded.items()))
        rows.append(f"<tr><td>{html.escape(rec.device)}</td><td>{html.escape(rec.model)}</td>"
                    f"<td><b>{html.escape(rec.variant or 'none')}</b></td><td>{html.escape(rec.reason)}</td>"
                    f"<td>{best}</td><td>{excluded or '–'}</td></tr>")
    return ("<h2>What to deploy where</h2><table class='verdicts' id='decisions'><thead><tr><th>device</th>"
            "<th>model</th><th>recommended</th><th>why</th><th>best per objective</th>"
            "<th>not candidates</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            "<p class='meta'>The fastest valid variant within the model's accuracy budget that failed no test; "
            "faster means decided by the paired interval beyond the noise floor (docs/measurement.md), "
            "otherwise tied, and a tie goes to the smaller stored model.</p>")


def invalid_html(df) -> str:
    import html

    invalid = df[df["verdict"] == "invalid"]
    if not len(invalid):
        return ""
    items = "".join(f"<li><b>{html.escape(r.device)} {html.escape(r.variant_id)}</b>: "
                    f"{html.escape(str(r.validity_reasons))}</li>" for r in invalid.itertuples())
    return (f"<details id='invalid'><summary>{len(invalid)} invalid measurement(s): why</summary>"
            f"<ul>{items}</ul></details>")


def failed_html(store, run_ids) -> str:
    """Variants a run could not measure (a build refused, a runner error), with the reason."""
    import html

    items = []
    for run in store.runs():
        if run["id"] in run_ids:
            for case, error in sorted((run["settings"].get("failed") or {}).items()):
                device, _, variant_id = case.partition("|")
                items.append(f"<li><b>{html.escape(device)} {html.escape(variant_id)}</b>: {html.escape(error)}</li>")
    if not items:
        return ""
    return (f"<h2>Not measured</h2><ul id='failed'>{''.join(items)}</ul>")


def _outcomes(store, run_ids) -> dict:
    """The tests' outcomes stored with the runs, keyed (device, variant id)."""
    out: dict = {}
    for run in store.runs():
        if run["id"] in run_ids:
            for case, record in (run["settings"].get("outcomes") or {}).items():
                device, _, variant_id = case.partition("|")
                out[(device, variant_id)] = record
    return out


def write_report(store, out: Path, run_id: Optional[str] = None, title: str = "Edge benchmark report",
                 manifests: Optional[dict] = None) -> Path:
    """Render the measurements of one run (or all runs) from the store into `out`.
    `manifests` ({name: Manifest}) give the decision summary the accuracy budgets."""
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
    kinds = {}
    for m in measurements:
        if m.emulated:
            kind = ((m.provenance or {}).get("device") or {}).get("emulation") or "guest-time"
            kinds.setdefault(kind, set()).add(m.device)
    for kind, devices in sorted(kinds.items()):
        what = ("instruction-counted guest time: no host load moves it, but it is not a real board's"
                if kind == "guest-time" else
                "wall-clock time of an emulated CPU: many times slower than the real board and moved by the "
                "host's load")
        notes.append(f"Emulated devices ({what}): " + ", ".join(sorted(devices)))
    notes += validity_notes(measurements, df)
    figs = build_figures(measurements, df)
    trend = trends.trend_frame(store.trend_rows(devices=df["device"].unique()), df["device"].unique(),
                               df["variant_id"].unique())
    if trends.has_history(trend):
        figs.append(trends.trend_figure(trend, highlight_run=run_id))
    run_ids = sorted(set(df["run_id"].dropna()))
    sections = [decision_html(measurements, _outcomes(store, set(run_ids)), manifests), invalid_html(df),
                failed_html(store, set(run_ids)),
                trends.regressions_html(store.comparisons(run_ids)),
                profile_section(measurements)]   # per-operator profiles (harness/report/profile.py)
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
