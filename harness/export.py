"""Stored measurements as CSV, JSON or Parquet, streamed row by row.

A year of a lab's nights is larger than memory once samples are included, so every writer
takes the store's measurements one batch at a time (Store.iter_measurements) and writes each
row as it comes. Per-inference samples are read, decoded and written only when asked for.
"""
from __future__ import annotations

import csv
import json
from typing import Iterable, Iterator, Optional

from .errors import HarnessError
from .frame import ROW_COLUMNS as COLUMNS, measurement_row

FORMATS = ("json", "csv", "parquet")
SAMPLES_COLUMN = "samples_ns"
_INT_COLUMNS = {"id", "n", "rounds"}
_BOOL_COLUMNS = {"emulated"}
_TEXT_COLUMNS = {"run_id", "created_at", "device", "model", "variant", "variant_id", "technique", "format",
                 "model_sha256", "verdict", "validity_reasons"}


def export(store, out, fmt: str, run_id: Optional[str] = None, samples: bool = False) -> int:
    """Write the measurements of `run_id` (every run when None) to `out`: a text stream for
    json and csv, a path or binary stream for parquet. Returns the number of measurements."""
    if fmt not in FORMATS:
        raise HarnessError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    rows = store.iter_measurements(run_id=run_id, samples=samples)
    if fmt == "parquet":
        return write_parquet(out, rows, samples)
    if fmt == "csv":
        chunks = csv_chunks(rows, samples)
    else:
        head = {"run": store.run(run_id)} if run_id is not None else {"runs": store.runs()}
        chunks = json_chunks(head, rows, samples)
    written = 0
    for chunk, count in chunks:
        out.write(chunk)
        written += count
    return written


class _Line:
    """A file-like target for csv.writer that hands back what was written."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def take(self) -> str:
        text, self.text = self.text, ""
        return text


def csv_chunks(measurements: Iterable, samples: bool) -> Iterator[tuple]:
    """(text, measurements in it): the header, then one line per measurement; the samples, when
    asked for, as one space-separated column of integer nanoseconds."""
    line = _Line()
    writer = csv.writer(line, lineterminator="\n")
    writer.writerow(list(COLUMNS) + ([SAMPLES_COLUMN] if samples else []))
    yield line.take(), 0
    for m in measurements:
        row = measurement_row(m)
        values = ["" if row[c] is None else row[c] for c in COLUMNS]
        if samples:
            values.append(" ".join(map(str, m.samples_ns)) if m.samples_ns is not None else "")
        writer.writerow(values)
        yield line.take(), 1


def json_chunks(head: dict, measurements: Iterable, samples: bool) -> Iterator[tuple]:
    """One JSON document, {<head>, "measurements": [...]}, one measurement per line."""
    opening = json.dumps(head, default=str)[:-1]
    yield opening + (", " if head else "") + '"measurements": [', 0
    first = True
    for m in measurements:
        d = m.to_dict()
        if not samples:
            d.pop(SAMPLES_COLUMN, None)
        yield ("\n" if first else ",\n") + json.dumps(d, default=str), 1
        first = False
    yield "\n]}\n", 0


def parquet_schema(samples: bool):
    import pyarrow as pa

    def kind(column):
        if column in _INT_COLUMNS:
            return pa.int64()
        if column in _BOOL_COLUMNS:
            return pa.bool_()
        if column in _TEXT_COLUMNS:
            return pa.string()
        return pa.float64()

    fields = [pa.field(c, kind(c)) for c in COLUMNS]
    if samples:
        fields.append(pa.field(SAMPLES_COLUMN, pa.list_(pa.int64())))
    return pa.schema(fields)


def write_parquet(out, measurements: Iterable, samples: bool, batch: int = 500) -> int:
    """Parquet (readable with pandas.read_parquet), written in row groups of `batch`
    measurements; needs pyarrow (the `export` extra)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise HarnessError('--format parquet needs pyarrow: pip install "edge-harness[export]" '
                           '(or pip install pyarrow)') from None
    schema = parquet_schema(samples)
    written = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        pending = []
        for m in measurements:
            row = measurement_row(m)
            for column in COLUMNS:
                if row[column] is not None and column not in _INT_COLUMNS | _BOOL_COLUMNS | _TEXT_COLUMNS:
                    row[column] = float(row[column])
            if samples:
                row[SAMPLES_COLUMN] = m.samples_ns
            pending.append(row)
            if len(pending) >= batch:
                writer.write_table(pa.Table.from_pylist(pending, schema=schema))
                written += len(pending)
                pending = []
        if pending or not written:
            writer.write_table(pa.Table.from_pylist(pending, schema=schema))
            written += len(pending)
    return written
