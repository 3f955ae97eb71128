"""The measurements table: the columns a person decides with by default, the rest behind a
toggle, columns no measurement fills left out; every cell HTML-escaped, sortable by a data key.

Default: device, variant, p50 with its interval, p90, speed against fp32 (tie rules),
top-1 change against fp32, stored size, the model's memory growth, energy, verdict. Behind the
toggle: technique, format, rounds, samples, p99, p99.9, top-1, host top-1, deployed size,
parameters, MACs, process peak RSS, MCU flash and RAM, load, init and first-inference times,
run. Widths: names never wrap, the default columns fit 1400 px.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Callable, Optional

from .axes import format_bytes, format_time


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    value: Callable          # (row, measurement, context) -> raw value (None: empty)
    text: Callable           # (raw value, context) -> display text
    default: bool = True
    numeric: bool = True


def _num(v) -> Optional[float]:
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _time(key):
    return lambda r, m, c: _num(r.get(key))


def _timing(name):
    return lambda r, m, c: _num((m.timings_ms or {}).get(name)) if m is not None else None


def _ms_text(v, c):
    return format_time(v, c["unit"], c["factor"])


def _p50_text(v, c):
    return v["text"]


def _p50(r, m, c):
    p50 = _num(r.get("p50_ms"))
    if p50 is None:
        return None
    low, high = _num(r.get("ci_low_ms")), _num(r.get("ci_high_ms"))
    text = format_time(p50, c["unit"], c["factor"])
    if low is not None and high is not None:
        text += (f" <span class='ci'>[{format_time(low, c['unit'], c['factor'])}–"
                 f"{format_time(high, c['unit'], c['factor'])}]</span>")
    return {"sort": p50, "text": text}


def _accuracy_change(r, m, c):
    return c["accuracy_change"].get(r.get("id_key"))


def _memory_growth(r, m, c):
    """The model's own memory: RSS growth over load and init (Linux), RAM on an MCU."""
    growth = _num(r.get("load_growth_kb"))
    if growth is not None:
        return {"sort": growth * 1024, "text": format_bytes(growth * 1024)}
    ram = _num(r.get("ram_bytes"))
    return None if ram is None else {"sort": ram, "text": f"{format_bytes(ram)} RAM"}


def _verdict(r, m, c):
    verdict = str(r.get("verdict") or "unknown")
    return {"sort": verdict, "verdict": verdict, "reasons": str(r.get("validity_reasons") or ""),
            "emulated": bool(r.get("emulated"))}


def _verdict_text(v, c):
    title = f" title='{html.escape(v['reasons'], quote=True)}'" if v["reasons"] else ""
    emu = " <span class='emu'>emulated</span>" if v["emulated"] else ""
    return f"<span class='verdict {html.escape(v['verdict'])}'{title}>{html.escape(v['verdict'])}</span>{emu}"


def _plain(key):
    return lambda r, m, c: None if r.get(key) is None or (isinstance(r.get(key), float) and math.isnan(r.get(key))) \
        else r.get(key)


def _escaped(v, c):
    return html.escape(str(v))


def _bytes_text(v, c):
    return format_bytes(v)


def _int_text(v, c):
    return f"{int(v):,}"


COLUMNS = (
    Column("device", "device", _plain("device"), _escaped, numeric=False),
    Column("variant", "variant", _plain("variant_id"), _escaped, numeric=False),
    Column("p50", "p50 [95% interval]", _p50, _p50_text),
    Column("p90", "p90", _time("p90_ms"), _ms_text),
    Column("speed", "vs fp32", _plain("vs_fp32"), _escaped, numeric=False),
    Column("accuracy_change", "top-1 vs fp32", _accuracy_change, lambda v, c: f"{v:+.2f} pt"),
    Column("stored", "stored size", lambda r, m, c: _num(r.get("storage_bytes")), _bytes_text),
    Column("memory", "memory growth", _memory_growth, lambda v, c: v["text"]),
    Column("energy", "mJ / inference", lambda r, m, c: _num(r.get("energy_per_inference_j")),
           lambda v, c: f"{1e3 * v:.3g}"),
    Column("verdict", "verdict", _verdict, _verdict_text, numeric=False),
    Column("technique", "technique", _plain("technique"), _escaped, default=False, numeric=False),
    Column("format", "format", _plain("format"), _escaped, default=False, numeric=False),
    Column("rounds", "rounds", lambda r, m, c: _num(r.get("rounds")), _int_text, default=False),
    Column("n", "samples", lambda r, m, c: _num(r.get("n")), _int_text, default=False),
    Column("p99", "p99", _time("p99_ms"), _ms_text, default=False),
    Column("p999", "p99.9", _time("p999_ms"), _ms_text, default=False),
    Column("accuracy", "top-1 %", lambda r, m, c: _num(r.get("accuracy")), lambda v, c: f"{100 * v:.2f}",
           default=False),
    Column("host_accuracy", "host top-1 %", lambda r, m, c: _num(r.get("host_accuracy")),
           lambda v, c: f"{100 * v:.2f}", default=False),
    Column("deployed", "deployed size", lambda r, m, c: _num(r.get("size_bytes")), _bytes_text, default=False),
    Column("params", "params", lambda r, m, c: _num(r.get("n_params")), _int_text, default=False),
    Column("macs", "MACs", lambda r, m, c: _num(r.get("macs")), _int_text, default=False),
    Column("peak_rss", "process peak RSS", lambda r, m, c: None if _num(r.get("peak_rss_kb")) is None
           else _num(r.get("peak_rss_kb")) * 1024, _bytes_text, default=False),
    Column("flash", "MCU flash", lambda r, m, c: _num(r.get("flash_bytes")), _bytes_text, default=False),
    Column("ram", "MCU RAM", lambda r, m, c: _num(r.get("ram_bytes")), _bytes_text, default=False),
    Column("load", "load ms", _timing("load"), lambda v, c: f"{v:.3g}", default=False),
    Column("init", "init ms", _timing("init"), lambda v, c: f"{v:.3g}", default=False),
    Column("first", "first inference ms", _timing("first_inference"), lambda v, c: f"{v:.3g}", default=False),
    Column("run", "run", _plain("run_id"), _escaped, default=False, numeric=False),
)

TOGGLE_JS = """
document.querySelectorAll('#columns input').forEach(function (box) {
  box.addEventListener('change', function () {
    document.getElementById('measurements').classList.toggle('show-' + box.value, box.checked);
  });
});
"""


def accuracy_changes(df) -> dict:
    """{row position: top-1 change in points against fp32 of the same run, device and model}."""
    out = {}
    for _, group in df.groupby(["run_id", "device", "model"], dropna=False, sort=False):
        ref = group[(group["technique"] == "fp32") & ~group["is_control"].fillna(False).astype(bool)]
        if ref.empty or ref["accuracy"].isna().all():
            continue
        base = float(ref["accuracy"].dropna().iloc[0])
        for pos, acc in zip(group.index, group["accuracy"]):
            if acc is not None and not math.isnan(acc):
                out[pos] = 100 * (float(acc) - base)
    return out


def table_html(df, measurements: Optional[list], unit: str, factor: float) -> str:
    """The table of `df` (measurements_frame) whose rows are `measurements` in order."""
    context = {"unit": unit, "factor": factor, "accuracy_change": accuracy_changes(df)}
    by_row = list(measurements) if measurements is not None and len(measurements) == len(df) else [None] * len(df)
    rows = []
    for pos, (record, m) in enumerate(zip(df.reset_index(drop=True).to_dict("records"), by_row)):
        record["id_key"] = df.index[pos]
        rows.append((record, [c.value(record, m, context) for c in COLUMNS]))
    # a device's variants together, fastest first (a click on a header sorts otherwise)
    rows.sort(key=lambda row: (str(row[0].get("device")), str(row[0].get("model")),
                               _num(row[0].get("p50_ms")) if _num(row[0].get("p50_ms")) is not None else math.inf))
    used = [i for i, c in enumerate(COLUMNS) if any(values[i] is not None for _, values in rows)]
    head = "".join(f"<th class='col-{COLUMNS[i].key}'>{html.escape(COLUMNS[i].title)}</th>" for i in used)
    body = []
    for record, values in rows:
        cells = []
        for i in used:
            column, value = COLUMNS[i], values[i]
            if value is None:
                text, key = "–", ""
            else:
                text = column.text(value, context)
                raw = value["sort"] if isinstance(value, dict) else value
                key = repr(float(raw)) if column.numeric else html.escape(str(raw), quote=True)
            cells.append(f"<td class='col-{column.key}' data-v=\"{key}\">{text}</td>")
        css = " class='invalid'" if record.get("verdict") == "invalid" else ""
        body.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    optional = [COLUMNS[i] for i in used if not COLUMNS[i].default]
    toggles = "".join(f"<label><input type='checkbox' value='{c.key}'> {html.escape(c.title)}</label>"
                      for c in optional)
    hide = "".join(f"#measurements .col-{c.key} {{ display: none; }} "
                   f"#measurements.show-{c.key} .col-{c.key} {{ display: table-cell; }}" for c in optional)
    return (f"<style>{hide}</style>"
            + (f"<div id='columns' class='meta'>More columns: {toggles}</div>" if optional else "")
            + f'<table class="sortable" id="measurements"><thead><tr>{head}</tr></thead>'
              f'<tbody>{"".join(body)}</tbody></table><script>{TOGGLE_JS}</script>')
