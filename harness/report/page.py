"""The HTML page: figures, a sortable table and the run's provenance, renderable offline.

plotly.js is inlined once in the page (never a CDN link: lab machines and CI have no
internet, and a report must open anywhere). Every name is HTML-escaped.
"""
from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path

import pandas as pd
from plotly.offline import get_plotlyjs

from ..errors import HarnessError


class ReportWriteError(HarnessError):
    """The report could not be written where asked: names the path and the cause."""

TABLE_COLUMNS = (
    ("device", "device", None), ("variant_id", "variant", None), ("technique", "technique", None),
    ("format", "format", None), ("verdict", "verdict", None), ("vs_fp32", "vs fp32", None),
    ("rounds", "rounds", "{:d}"), ("n", "n", "{:d}"), ("p50_ms", "p50 ms", "{:.4f}"),
    ("p90_ms", "p90 ms", "{:.4f}"), ("p99_ms", "p99 ms", "{:.4f}"), ("ci_low_ms", "median CI low", "{:.4f}"),
    ("ci_high_ms", "median CI high", "{:.4f}"), ("accuracy", "top-1 %", "pct"),
    ("host_accuracy", "host top-1 %", "pct"), ("size_bytes", "size B", "{:d}"),
    ("storage_bytes", "storage B", "{:d}"), ("n_params", "params", "{:d}"), ("macs", "MACs", "{:d}"),
    ("peak_rss_kb", "peak RSS kB", "{:.0f}"), ("flash_bytes", "flash B", "{:.0f}"),
    ("ram_bytes", "RAM B", "{:.0f}"), ("energy_per_inference_j", "mJ/inference", "mj"),
    ("run_id", "run", None),
)

SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var asc = th.getAttribute('data-order') !== 'asc';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
    th.setAttribute('data-order', asc ? 'asc' : 'desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { margin-bottom: 4px; } .meta { color: #555; font-size: 14px; }
.note { background: #fff4d6; border: 1px solid #e8c35a; padding: 8px 12px; margin: 12px 0; }
table.sortable { border-collapse: collapse; font-size: 13px; margin-top: 12px; }
table.sortable th, table.sortable td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
table.sortable td:nth-child(-n+4), table.sortable th:nth-child(-n+4) { text-align: left; }
table.sortable th { background: #f3f3f3; cursor: pointer; position: sticky; top: 0; }
table.sortable th[data-order=asc]::after { content: " \\25B2"; }
table.sortable th[data-order=desc]::after { content: " \\25BC"; }
.figure { margin: 24px 0; }
table.verdicts { border-collapse: collapse; font-size: 13px; }
table.verdicts td, table.verdicts th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
tr.regression td { background: #fde2e1; font-weight: 600; }
"""


def _cell(value, fmt) -> tuple[str, str]:
    """(display text, sort key) for one table cell, both safe to put in HTML."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–", ""
    if fmt is None:
        text = str(value)
        return html.escape(text), html.escape(text, quote=True)
    if fmt == "pct":
        return f"{100 * value:.2f}", repr(float(value))
    if fmt == "mj":
        return f"{1e3 * value:.4f}", repr(float(value))
    if fmt == "{:d}":
        value = int(value)
    return fmt.format(value), repr(float(value))


def table_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in TABLE_COLUMNS)
    rows = []
    for _, row in df.iterrows():
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            text, sort_key = _cell(row.get(key), fmt)
            cells.append(f'<td data-v="{sort_key}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable" id="measurements"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def render_page(title: str, meta_lines: list[str], notes: list[str], figures: list, df: pd.DataFrame,
                sections: tuple = ()) -> str:
    """`sections`: extra HTML blocks placed before the figures, already escaped by their maker;
    the first (the decision summary) comes before the notes."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "".join(f"<div class='meta'>{html.escape(line)}</div>" for line in meta_lines),
        *sections[:1],   # the decision summary first
        "".join(f"<div class='note'>{html.escape(note)}</div>" for note in notes),
        *sections[1:],
    ]
    for i, fig in enumerate(figures):
        parts.append(f"<div class='figure' id='figure-{i}'>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{i}",
                                 config={"displaylogo": False, "responsive": True}))
        parts.append("</div>")
    parts.append("<h2>Measurements</h2><p class='meta'>Click a column to sort.</p>")
    parts.append(table_html(df))
    parts.append(f"<script>{SORT_JS}</script></body></html>")
    return "".join(parts)


def write_page(path: Path, text: str) -> Path:
    """Write the page atomically; any failure (a directory, read-only, disk full, /proc)
    is a HarnessError naming the path and the cause, and leaves no temporary file."""
    path = Path(path)
    if path.is_dir():
        raise ReportWriteError(f"report {path}: not written: it is a directory (give a file name, "
                           f"e.g. {path / 'report.html'})")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique name beside the target: a reader never sees half a report, and two
        # writers never share a temporary file.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from other users
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ReportWriteError(f"report {path}: not written: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path
