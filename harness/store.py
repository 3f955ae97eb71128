"""Persistence behind a URL: SQLite by default, PostgreSQL for a lab.

Every measurement is committed the moment it exists, so a killed run keeps everything
finished before it. Key figures are columns (for trends, gates and tables); the rest of the
Measurement is JSON beside them, and its per-inference samples are one compact binary blob
(harness/samples.py) that is decoded only when a statistic or a chart asks for them, and may
be dropped by retention (`prune_samples`) while every summary, verdict and provenance stays.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import uuid
from pathlib import Path
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from . import provenance, samples as sample_codec
from .lease import LeaseTable
from .errors import StoreError
from .measurement import Measurement
from .redaction import redact  # noqa: F401 (re-exported: callers import it from here)
from .store_tables import (comparisons_table, measurements_table, migrate, open_engine, runs_table,
                           verdict_column)

DEFAULT_URL = "sqlite:///reports/harness.sqlite"


class Store:
    def __init__(self, url: str = DEFAULT_URL):
        self.url = url
        try:
            parsed = make_url(url)
        except Exception:
            raise StoreError(f"--store: expected a URL like sqlite:///path.sqlite or "
                             f"postgresql+psycopg://user@host/db, got {url!r}") from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"--store {redact(url)}: cannot create its directory: {exc}") from None
        try:
            self.engine = open_engine(parsed)
            migrate(self.engine)
            # Leases on an engine of their own: a renewal never waits behind a measurement write.
            self.leases = LeaseTable(self.engine.url)
        except StoreError:
            raise
        except ModuleNotFoundError as exc:
            hint = (' (use postgresql+psycopg://... with pip install "psycopg[binary]")'
                    if "psycopg" in str(exc) else "")
            raise StoreError(f"--store {redact(url)}: cannot open the store: {exc}{hint}") from None
        except Exception as exc:
            raise StoreError(f"--store {redact(url)}: cannot open the store: {_first_line(exc)}") from None

    # ------------------------------------------------------------ runs

    def start_run(self, settings: dict | None = None, tag: str | None = None) -> str:
        run_id = uuid.uuid4().hex[:12]
        ctl = provenance.controller()
        self._write(runs_table.insert().values(
            id=run_id, started_at=provenance.now(), git_commit=ctl["git_commit"],
            harness_version=ctl["harness_version"], tag=tag, settings=json.dumps(settings or {})))
        return run_id

    def finish_run(self, run_id: str, outcomes: Optional[dict] = None, failed: Optional[dict] = None) -> None:
        """Close the run; `outcomes` ({"device|model/variant": {"passed": [...], "failed":
        [...]}}, the tests' verdicts) and `failed` ({"device|model/variant": error}, variants
        that could not be measured) join its settings so a report rebuilt later has them."""
        values = {"finished_at": provenance.now()}
        if outcomes or failed:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(runs_table.c.settings).where(runs_table.c.id == run_id)).first()
            settings = json.loads(row.settings or "{}") if row else {}
            values["settings"] = json.dumps({**settings, "outcomes": outcomes or {}, "failed": failed or {}})
        self._write(runs_table.update().where(runs_table.c.id == run_id).values(**values))

    def runs(self) -> list[dict]:
        """Every run, oldest first, with its measurement count and devices."""
        return self._run_rows()

    def run(self, run_id: str) -> dict:
        """One run by its exact id (one indexed look-up, not a scan of every run)."""
        rows = self._run_rows(only=run_id)
        if not rows:
            raise StoreError(f"store {redact(self.url)}: no run {run_id!r}; `harness runs` lists them")
        return rows[0]

    def _run_rows(self, only: Optional[str] = None) -> list[dict]:
        m, r = measurements_table, runs_table
        counts = sa.select(m.c.run_id, sa.func.count().label("measurements")).group_by(m.c.run_id)
        devices = sa.select(m.c.run_id, m.c.device).distinct()
        query = sa.select(r).order_by(r.c.started_at, r.c.id)
        if only is not None:
            counts, devices, query = (counts.where(m.c.run_id == only), devices.where(m.c.run_id == only),
                                      query.where(r.c.id == only))
        counts = counts.subquery()
        query = (query.add_columns(sa.func.coalesce(counts.c.measurements, 0).label("measurements"))
                 .outerjoin(counts, counts.c.run_id == r.c.id))
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings().all()]
            per_run: dict = {}
            for row in conn.execute(devices):
                per_run.setdefault(row.run_id, []).append(row.device)
        for row in rows:
            row["devices"] = sorted(per_run.get(row["id"], []))
            row["settings"] = json.loads(row["settings"] or "{}")
        return rows

    def resolve_run(self, ref: str, exclude: Optional[str] = None) -> str:
        """A run id from `latest`, a run id (or a unique prefix of one), or a tag (its latest run).
        `latest` is the newest run holding measurements, other than `exclude`."""
        candidates = [r for r in self.runs() if r["id"] != exclude]
        if ref == "latest":
            with_data = [r for r in candidates if r["measurements"]]
            if not with_data:
                raise StoreError(f"store {redact(self.url)}: no earlier run with measurements to use as 'latest'")
            return with_data[-1]["id"]
        exact = [r for r in candidates if r["id"] == ref]
        if exact:
            return ref
        prefixed = [r for r in candidates if len(ref) >= 4 and r["id"].startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]["id"]
        tagged = [r for r in candidates if r["tag"] == ref and r["measurements"]]
        if tagged:
            return tagged[-1]["id"]
        raise StoreError(f"store {redact(self.url)}: {ref!r} is neither 'latest', a run id nor a run tag "
                         f"with measurements; `harness runs` lists them")

    def run_scope(self, ref: Optional[str]) -> Optional[str]:
        """What the CLI's RUN argument selects: None (every run) for 'all' or None, else the run
        id that resolve_run() finds for 'latest', an id, a unique id prefix or a tag."""
        return None if ref in (None, "all") else self.resolve_run(ref)

    # ------------------------------------------------------------ measurements

    def save(self, m: Measurement) -> int:
        """Commit one measurement now; returns its id. A measurement already saved (it has
        an id: a campaign's measurement after another of its rounds) is replaced in place."""
        try:
            blob = sample_codec.encode(m.samples_ns if m.samples_ns is not None else [])
        except sample_codec.SampleCodecError as exc:
            raise StoreError(f"store {redact(self.url)}: measurement {m.device}/{m.variant_id}: {exc}") from None
        light = copy.copy(m)  # the JSON without the samples (asdict would deep-copy every one)
        light.samples_ns = None
        data = light.to_dict()
        del data["samples_ns"]
        energy = (m.energy or {}).get("energy_per_inference_j")
        if m.id is not None:
            self._write(measurements_table.update().where(measurements_table.c.id == m.id).values(
                n=m.latency.n, mean_ms=m.latency.mean_ms, p50_ms=m.latency.p50_ms, p90_ms=m.latency.p90_ms,
                p99_ms=m.latency.p99_ms, peak_rss_kb=m.memory.peak_rss_kb, accuracy=m.accuracy,
                energy_per_inference_j=energy, data=json.dumps(data, default=str), samples=blob,
                verdict=verdict_column(m.validity)))
            return m.id
        result = self._write(measurements_table.insert().values(
            run_id=m.run_id, created_at=m.created_at, device=m.device, model=m.model,
            variant=m.variant, technique=m.technique, format=m.format, model_sha256=m.model_sha256,
            emulated=m.emulated, n=m.latency.n, mean_ms=m.latency.mean_ms, p50_ms=m.latency.p50_ms,
            p90_ms=m.latency.p90_ms, p99_ms=m.latency.p99_ms, peak_rss_kb=m.memory.peak_rss_kb,
            accuracy=m.accuracy, size_bytes=m.size_bytes, energy_per_inference_j=energy,
            data=json.dumps(data, default=str), samples=blob,
            verdict=verdict_column(m.validity)))
        m.id = int(result.inserted_primary_key[0])
        return m.id

    def measurements(self, run_id: Optional[str] = None, samples: bool = True) -> list[Measurement]:
        """The run's (or every run's) measurements, oldest first. `samples=False` leaves
        `samples_ns` None (nothing decoded); so does a measurement whose samples were pruned."""
        return list(self.iter_measurements(run_id=run_id, samples=samples))

    def iter_measurements(self, run_id: Optional[str] = None, samples: bool = True, batch: int = 200):
        """Like measurements(), one at a time: rows are fetched `batch` at a time (a server-side
        cursor on PostgreSQL), so an export of a year holds one batch in memory, not the year."""
        columns = [measurements_table.c.id, measurements_table.c.run_id, measurements_table.c.data]
        if samples:
            columns.append(measurements_table.c.samples)
        query = sa.select(*columns).order_by(measurements_table.c.id)
        if run_id is not None:
            query = query.where(measurements_table.c.run_id == run_id)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=batch).execute(query):
                d = json.loads(row.data)
                if not samples:
                    d["samples_ns"] = None
                elif row.samples is not None:
                    d["samples_ns"] = sample_codec.decode(row.samples)
                else:  # pruned (None), or a legacy row that kept its samples in JSON
                    d["samples_ns"] = d.get("samples_ns")
                m = Measurement.from_dict(d)
                m.id, m.run_id = row.id, row.run_id
                yield m

    def dataframe(self, run: Optional[str] = None):
        """Measurements as a pandas DataFrame, one row each, of `run`: what the CLI accepts
        ('latest', a run id or unique prefix, a tag; 'all' or None for every run)."""
        from .frame import measurements_frame

        return measurements_frame(self.measurements(run_id=self.run_scope(run), samples=False))

    def trend_rows(self, devices=None) -> list[dict]:
        """Key figures of every measurement (of `devices`, if given) with its run's start time,
        oldest first: for trends and history, read from columns only (no JSON, no samples)."""
        m, r = measurements_table, runs_table
        query = (sa.select(m.c.run_id, r.c.started_at, r.c.git_commit, r.c.tag, m.c.device, m.c.model,
                           m.c.variant, m.c.p50_ms, m.c.p99_ms, m.c.accuracy, m.c.peak_rss_kb, m.c.verdict)
                 .join(r, r.c.id == m.c.run_id).order_by(r.c.started_at, m.c.id))
        if devices is not None:
            query = query.where(m.c.device.in_(sorted(set(devices))))
        with self.engine.connect() as conn:
            result = conn.execute(query)
            names = list(result.keys())
            return [dict(zip(names, row)) for row in result.all()]  # plain tuples: a year is 73,000 rows

    # ------------------------------------------------------------ retention

    def prune_samples(self, keep_days: Optional[float] = None, keep_runs: Optional[int] = None,
                      now: Optional[_dt.datetime] = None, dry_run: bool = False) -> dict:
        """Drop the per-inference samples of runs started more than `keep_days` before `now`, or
        of every run but the newest `keep_runs`. Rows, key columns, verdicts, statistics and
        provenance all stay. (A measurement outside any run goes by its own time, and only
        with `keep_days`.) Returns what was (or, with dry_run, would be) dropped."""
        if (keep_days is None) == (keep_runs is None):
            raise StoreError("prune: give exactly one of a time (e.g. 90d) or a number of runs to keep")
        m, r = measurements_table, runs_table
        if keep_days is not None:
            if keep_days < 0:
                raise StoreError(f"prune: keep time must not be negative, got {keep_days} days")
            cutoff = ((now or _dt.datetime.now(_dt.timezone.utc)) - _dt.timedelta(days=keep_days)).isoformat()
            old_runs = sa.select(r.c.id).where(r.c.started_at < cutoff)
            which = sa.or_(m.c.run_id.in_(old_runs), sa.and_(m.c.run_id.is_(None), m.c.created_at < cutoff))
        else:
            if keep_runs < 0:
                raise StoreError(f"prune: number of runs to keep must not be negative, got {keep_runs}")
            with self.engine.connect() as conn:
                newest_first = conn.execute(sa.select(r.c.id).order_by(r.c.started_at.desc(), r.c.id.desc()))
                old = [row.id for row in newest_first][keep_runs:]
            which = m.c.run_id.in_(old)
        which = sa.and_(which, m.c.samples.is_not(None))
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(sa.func.count().label("measurements"),
                                           sa.func.count(sa.distinct(m.c.run_id)).label("runs"),
                                           sa.func.coalesce(sa.func.sum(sa.func.length(m.c.samples)), 0)
                                           .label("bytes")).where(which)).one()
            if not dry_run and found.measurements:
                conn.execute(m.update().where(which).values(samples=None))
        return {"runs": found.runs, "measurements": found.measurements, "bytes": int(found.bytes)}

    def vacuum(self) -> None:
        """Give freed space back: SQLite rewrites the file; PostgreSQL marks it reusable."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            if self.engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def stats(self) -> dict:
        """Rows and bytes: what `harness store stats` prints."""
        m = measurements_table
        kept = sa.case((m.c.samples.is_not(None), m.c.n), else_=0)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(
                sa.func.count().label("measurements"),
                sa.func.count(m.c.samples).label("with_samples"),
                sa.func.coalesce(sa.func.sum(kept), 0).label("samples"),
                sa.func.coalesce(sa.func.sum(sa.func.length(m.c.samples)), 0).label("sample_bytes"),
                sa.func.coalesce(sa.func.sum(sa.func.length(m.c.data)), 0).label("json_chars"))).one()
            run_count = conn.execute(sa.select(sa.func.count()).select_from(runs_table)).scalar()
            if self.engine.dialect.name == "sqlite":
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
                total = pages * conn.exec_driver_sql("PRAGMA page_size").scalar()
            elif self.engine.dialect.name == "postgresql":
                total = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
            else:
                total = None
        out = {"runs": run_count, **{k: int(v) for k, v in row._mapping.items()}, "database_bytes": total}
        out["pruned"] = out["measurements"] - out["with_samples"]
        out["bytes_per_sample"] = out["sample_bytes"] / out["samples"] if out["samples"] else None
        return out

    def key_history(self, key: tuple, metric: str, exclude_run: Optional[str], limit: int = 20) -> Optional[list]:
        """A (device, model, variant)'s statistic in its newest `limit` runs other than
        `exclude_run`, oldest first (one value per run: its last measurement); None for a
        statistic without a column (the gates then do without history)."""
        from . import metrics

        row = metrics.get(metric)
        column = row.column if row is not None else None
        if column is None:
            return None
        m, r = measurements_table, runs_table
        query = (sa.select(m.c.run_id, m.c[column]).join(r, r.c.id == m.c.run_id)
                 .where(m.c.device == key[0], m.c.model == key[1], m.c.variant == key[2])
                 .order_by(r.c.started_at, m.c.id))
        if exclude_run is not None:
            query = query.where(m.c.run_id != exclude_run)
        per_run: dict = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                per_run[row[0]] = row[1]   # insertion order = run order; the last row of a run wins
        return list(per_run.values())[-limit:]

    # ------------------------------------------------------------ comparisons

    def save_comparison(self, comparison, gates: list) -> None:
        self._write(comparisons_table.insert().values(
            base_run=comparison.base_run, new_run=comparison.new_run, created_at=provenance.now(),
            gates=json.dumps([str(g) for g in gates]), regressions=len(comparison.regressions),
            data=json.dumps(comparison.to_dict(), default=str)))

    def comparisons(self, run_ids=None) -> list[dict]:
        query = sa.select(comparisons_table).order_by(comparisons_table.c.id)
        if run_ids is not None:
            query = query.where(comparisons_table.c.new_run.in_(list(run_ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**dict(r), "gates": json.loads(r["gates"]), "data": json.loads(r["data"])} for r in rows]

    def _write(self, statement):
        try:
            with self.engine.begin() as conn:
                return conn.execute(statement)
        except Exception as exc:
            raise StoreError(f"store {redact(self.url)}: write failed: {_first_line(exc)}") from None

    def close(self):
        self.engine.dispose()
        self.leases.close()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
