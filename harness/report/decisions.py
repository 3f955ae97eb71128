"""The decision summary a report opens with: per device and model, what to deploy and why
(harness.recommend), with the tests' outcomes and one line to copy into a design review.
Every name is HTML-escaped."""
from __future__ import annotations

import html
from typing import Optional

from .axes import format_bytes


def _speedup(rec) -> str:
    if rec.speedup is None:
        return "fp32 itself" if rec.variant and rec.relation == "" else "–"
    interval = (f" [{rec.speedup_interval[0]:.2f}–{rec.speedup_interval[1]:.2f}]" if rec.speedup_interval else "")
    if rec.relation == "tied":
        return f"tied ({rec.speedup:.2f}x{interval}, within the noise)"
    word = "faster" if rec.relation == "faster" else "slower"
    return f"{rec.speedup:.2f}x {word}{interval}"


def _accuracy(rec) -> str:
    if rec.accuracy_change_pt is None:
        return "–"
    budget = f" (budget −{rec.accuracy_budget_pt:.1f})" if rec.accuracy_budget_pt is not None else ""
    return f"{rec.accuracy_change_pt:+.1f} pt{budget}"


def _tests(rec) -> str:
    """Each test over the group: ✓ when the chosen variant passed, the failing variants named."""
    if not rec.tests:
        return "<span class='meta'>no test outcomes stored</span>"
    items = []
    for test, record in rec.tests.items():
        mark = ("✓" if rec.variant in record["passed"] else "✗" if rec.variant in record["failed"] else "·")
        failed = (f" <span class='fail'>failed: {html.escape(', '.join(record['failed']))}</span>"
                  if record["failed"] else "")
        items.append(f"<li><span class='mark'>{mark}</span> {html.escape(test)} "
                     f"({len(record['passed'])} passed){failed}</li>")
    return f"<ul class='tests'>{''.join(items)}</ul>"


def decision_html(recommendations: list) -> str:
    rows = []
    for rec in recommendations:
        device = html.escape(rec.device) + (" <span class='emu'>emulated</span>" if rec.emulated else "")
        best = "<br>".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in rec.best.items())
        excluded = "; ".join(f"<b>{html.escape(v)}</b>: {html.escape(w)}" for v, w in sorted(rec.excluded.items()))
        size = ("–" if rec.stored_bytes is None else
                format_bytes(rec.stored_bytes) + (f" · deployed {format_bytes(rec.file_bytes)}"
                                                  if rec.file_bytes is not None and rec.file_bytes != rec.stored_bytes
                                                  else ""))
        energy = "–" if rec.energy_j is None else f"{1e3 * rec.energy_j:.3g} mJ"
        verdict = html.escape(rec.verdict or "–")
        rows.append(
            f"<tr class='decision' data-device='{html.escape(rec.device, quote=True)}' "
            f"data-model='{html.escape(rec.model, quote=True)}'>"
            f"<td>{device}</td><td>{html.escape(rec.model)}</td>"
            f"<td class='recommended'><b>{html.escape(rec.variant or 'none')}</b></td>"
            f"<td>{html.escape(_speedup(rec))}</td><td>{html.escape(_accuracy(rec))}</td><td>{size}</td>"
            f"<td>{energy}</td><td class='verdict {verdict}'>{verdict}</td><td>{_tests(rec)}</td>"
            f"<td class='best'>{best}</td></tr>"
            f"<tr class='line'><td colspan='10'><code class='copy' title='one line for a design review'>"
            f"{html.escape(rec.reason)}</code>"
            + (f"<div class='excluded'>not candidates: {excluded}</div>" if excluded else "") + "</td></tr>")
    return ("<h2 id='summary'>What to deploy where</h2><table class='verdicts' id='decisions'><thead><tr>"
            "<th>device</th><th>model</th><th>recommended</th><th>speed vs fp32 [95% interval]</th>"
            "<th>top-1 vs fp32</th><th>stored size</th><th>energy / inference</th><th>verdict</th>"
            "<th>tests</th><th>best per objective</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            "<p class='meta'>Recommended: the fastest valid variant within the model's accuracy budget that "
            "failed no test; faster means decided by the paired interval beyond the noise floor "
            "(docs/measurement.md), otherwise tied, and a tie goes to the smaller stored model. "
            "Stored size is the compressed artefact; deployed is the file the runtime loads.</p>")


def outcomes_of(runs: list, run_ids: set) -> dict:
    """The tests' outcomes stored with the runs, keyed (device, variant id)."""
    out: dict = {}
    for run in runs:
        if run["id"] in run_ids:
            for case, record in (run["settings"].get("outcomes") or {}).items():
                device, _, variant_id = case.partition("|")
                entry = out.setdefault((device, variant_id), {"passed": [], "failed": []})
                for key in ("passed", "failed"):
                    entry[key] += list(record.get(key) or [])
    return out


def not_measured_html(runs: list, run_ids: set, skipped: Optional[dict] = None) -> str:
    """Variants a run could not measure (a build refused, a runner error) or skipped, with the reason."""
    items = []
    for run in runs:
        if run["id"] in run_ids:
            for case, error in sorted((run["settings"].get("failed") or {}).items()):
                device, _, variant_id = case.partition("|")
                items.append(f"<li><b>{html.escape(device)} {html.escape(variant_id)}</b>: failed: "
                             f"{html.escape(str(error))}</li>")
            for case, reason in sorted((run["settings"].get("skipped") or {}).items()):
                device, _, variant_id = case.partition("|")
                items.append(f"<li><b>{html.escape(device)} {html.escape(variant_id)}</b>: skipped: "
                             f"{html.escape(str(reason))}</li>")
    if not items:
        return ""
    return f"<h2>Not measured</h2><ul id='failed'>{''.join(items)}</ul>"
