"""The HTML page: the sections its maker gives, figures, a table with a column toggle and the
run's provenance, renderable offline.

plotly.js is the vendored cartesian bundle (harness/report/plotlyjs.py): inlined once,
gzip-compressed as base64 and unpacked by the browser's DecompressionStream, or (`assets`)
loaded from a file written once beside many reports. Each figure is a JSON block (plotly
writes '<' as \\u003c, so a name never closes the script) drawn once plotly.js is ready;
`window.reportReady` is the promise of that. Every name is HTML-escaped.

Order: title and provenance, the first section (the decision summary), the notes, the other
sections, the figures, `after_figures` (a place for more views, e.g. per-operator profiles),
the measurements table, `closing` (the system description).
"""
from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path
from typing import Optional
from urllib.parse import quote

import pandas as pd

from ..errors import HarnessError
from . import plotlyjs


class ReportWriteError(HarnessError):
    """The report could not be written where asked: names the path and the cause."""


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

# Draws every figure once plotly.js is there; an inlined bundle is unpacked first.
DRAW_JS = """
window.reportReady = (async function () {
  var packed = document.getElementById('plotly-gz');
  if (packed && typeof Plotly === 'undefined') {
    if (typeof DecompressionStream === 'undefined') {
      throw new Error('this browser cannot unpack the inlined charts (no DecompressionStream: ' +
                      'Chrome 80+, Firefox 113+, Safari 16.4+); the tables hold every number');
    }
    var bytes = Uint8Array.from(atob(packed.textContent.trim()), function (c) { return c.charCodeAt(0); });
    var text = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
    var script = document.createElement('script');
    script.textContent = text;
    document.head.appendChild(script);
  }
  if (typeof Plotly === 'undefined') {
    throw new Error('plotly.js did not load (a report written with --report-assets needs its assets folder)');
  }
  var shared = document.getElementById('plot-template');
  var template = shared ? JSON.parse(shared.textContent).layout.template : undefined;
  var specs = document.querySelectorAll('script.plot-spec');
  for (var i = 0; i < specs.length; i++) {
    var spec = JSON.parse(specs[i].textContent);
    if (template && spec.layout.template === undefined) { spec.layout.template = template; }
    await Plotly.newPlot(specs[i].getAttribute('data-div'), spec.data, spec.layout,
                         {displaylogo: false, responsive: true});
  }
  document.body.setAttribute('data-report', 'ready');
})();
window.reportReady.catch(function (err) {
  var note = document.getElementById('plot-error');
  note.textContent = 'Charts not drawn: ' + err.message;
  note.style.display = 'block';
});
"""

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1352px; }
h1 { margin-bottom: 4px; } .meta { color: #555; font-size: 14px; }
.note { background: #fff4d6; border: 1px solid #e8c35a; padding: 8px 12px; margin: 12px 0; }
#plot-error { display: none; background: #fde2e1; border: 1px solid #d9534f; padding: 8px 12px; }
table.sortable { border-collapse: collapse; font-size: 13px; margin-top: 8px; }
table.sortable th, table.sortable td { border: 1px solid #ddd; padding: 3px 6px; text-align: right;
  white-space: nowrap; }
table.sortable .col-device, table.sortable .col-variant, table.sortable .col-technique,
table.sortable .col-format, table.sortable .col-verdict, table.sortable .col-speed { text-align: left; }
table.sortable th { background: #f3f3f3; cursor: pointer; position: sticky; top: 0; }
table.sortable th[data-order=asc]::after { content: " \\25B2"; }
table.sortable th[data-order=desc]::after { content: " \\25BC"; }
table.sortable tr.invalid td { background: #fff0f0; }
.ci { color: #666; font-size: 12px; }
#columns label { margin-right: 10px; white-space: nowrap; }
.figure { margin: 24px 0; }
.plot { min-height: 480px; }
table.verdicts { border-collapse: collapse; font-size: 13px; }
table.verdicts td, table.verdicts th { border: 1px solid #ddd; padding: 3px 8px; text-align: left;
  vertical-align: top; }
table.system th { background: #f7f7f7; white-space: nowrap; }
#decisions tr.decision td { background: #f4f9f4; }
#decisions tr.line td { border-top: none; padding-bottom: 8px; }
#decisions .recommended { font-size: 15px; }
code.copy { user-select: all; background: #f3f3f3; padding: 2px 4px; display: inline-block; }
.excluded { color: #555; font-size: 12px; margin-top: 3px; }
ul.tests { margin: 0; padding-left: 0; list-style: none; } .fail { color: #b00; }
.verdict.invalid { color: #b00; font-weight: 600; }
.emu { background: #e6e0f8; color: #4b2c91; font-size: 11px; padding: 0 4px; border-radius: 3px; }
tr.regression td { background: #fde2e1; font-weight: 600; }
"""


def figure_json(fig, shared_template: Optional[dict] = None) -> str:
    """A figure's {"data", "layout"} as JSON safe inside a <script> ('<', '>', '/' escaped);
    a layout template equal to `shared_template` is left out (the page adds it once: 7 KB a figure)."""
    import json

    import plotly.io as pio

    spec = json.loads(pio.to_json(fig, validate=False))
    if shared_template is not None and spec.get("layout", {}).get("template") == shared_template:
        del spec["layout"]["template"]
    return pio.to_json(spec, validate=False)


def _shared_template() -> dict:
    import json

    import plotly.io as pio

    return json.loads(pio.to_json({"data": [], "layout": {"template": pio.templates["plotly_white"]}},
                                  validate=False))["layout"]["template"]


def _plotly_tag(out_path: Optional[Path], assets: Optional[Path]) -> str:
    if assets is None:
        return f"<script id='plotly-gz' type='application/octet-stream'>{plotlyjs.inline_base64()}</script>"
    bundle = plotlyjs.write_assets(assets)
    try:
        src = os.path.relpath(bundle, Path(out_path).resolve().parent if out_path else Path.cwd())
        src = quote(src.replace(os.sep, "/"))
    except ValueError:   # another drive: an absolute file URI
        src = bundle.resolve().as_uri()
    return f"<script src=\"{html.escape(src, quote=True)}\"></script>"


def render_page(title: str, meta_lines: list[str], notes: list[str], figures: list, df: pd.DataFrame,
                sections: tuple = (), *, table: Optional[str] = None, after_figures: tuple = (),
                closing: tuple = (), out_path: Optional[Path] = None, assets: Optional[Path] = None) -> str:
    """`sections`: HTML blocks placed before the figures, already escaped by their maker; the
    first (the decision summary) comes before the notes. `table`: the measurements table
    (default: built from `df`). `assets`: a folder plotly.js is written to once and loaded
    from (relative to `out_path`); default: inlined."""
    plotlyjs.check_trace_types(figures)
    if table is None and len(df):
        from .axes import time_unit
        from .table import table_html

        unit, factor = time_unit(df["p50_ms"])
        table = table_html(df, None, unit, factor)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "".join(f"<div class='meta'>{html.escape(line)}</div>" for line in meta_lines),
        *sections[:1],   # the decision summary first
        "".join(f"<div class='note'>{html.escape(note)}</div>" for note in notes),
        *sections[1:],
        "<div id='plot-error'></div>",
    ]
    template = _shared_template() if figures else None
    if template is not None:
        import plotly.io as pio

        parts.append("<script type='application/json' id='plot-template'>"
                     f"{pio.to_json({'data': [], 'layout': {'template': template}}, validate=False)}</script>")
    for i, fig in enumerate(figures):
        parts.append(f"<div class='figure' id='figure-{i}'><div id='plot-{i}' class='plot'></div>"
                     f"<script type='application/json' class='plot-spec' data-div='plot-{i}'>"
                     f"{figure_json(fig, template)}</script></div>")
    parts.extend(after_figures)
    if table:
        parts.append("<h2 id='table'>Measurements</h2><p class='meta'>Click a column to sort; hover a verdict "
                     "for its reasons.</p>")
        parts.append(table)
    parts.extend(closing)
    parts.append(_plotly_tag(out_path, assets))
    parts.append(f"<script>{SORT_JS}</script><script>{DRAW_JS}</script></body></html>")
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
