"""Persistence behind a URL: SQLite by default, PostgreSQL for a lab.

Every measurement is committed the moment it exists, so a killed run keeps everything
finished before it. Key figures are columns (for queries and comparisons); the whole
Measurement, samples included, is kept as JSON beside them.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from . import provenance
from .errors import StoreError
from .measurement import Measurement

DEFAULT_URL = "sqlite:///reports/harness.sqlite"

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("harness_version", sa.String(32)),
    sa.Column("tag", sa.String(200)),
    sa.Column("settings", sa.Text, nullable=False, default="{}"),
)

measurements = sa.Table(
    "measurements", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), index=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("device", sa.String(200), nullable=False, index=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("variant", sa.String(200), nullable=False),
    sa.Column("technique", sa.String(100)),
    sa.Column("format", sa.String(20)),
    sa.Column("model_sha256", sa.String(64)),
    sa.Column("emulated", sa.Boolean, default=False),
    sa.Column("n", sa.Integer),
    sa.Column("mean_ms", sa.Float),
    sa.Column("p50_ms", sa.Float),
    sa.Column("p90_ms", sa.Float),
    sa.Column("p99_ms", sa.Float),
    sa.Column("peak_rss_kb", sa.Integer),
    sa.Column("accuracy", sa.Float),
    sa.Column("size_bytes", sa.Integer),
    sa.Column("energy_per_inference_j", sa.Float),
    sa.Column("data", sa.Text, nullable=False),
)


def redact(url: str) -> str:
    """The URL as it may be printed: never with its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable store URL>"


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
            self.engine = sa.create_engine(parsed, future=True)
            if parsed.get_backend_name() == "sqlite":
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            metadata.create_all(self.engine)
        except Exception as exc:
            raise StoreError(f"--store {redact(url)}: cannot open the store: {_first_line(exc)}") from None

    # ------------------------------------------------------------ runs

    def start_run(self, settings: dict | None = None, tag: str | None = None) -> str:
        run_id = uuid.uuid4().hex[:12]
        ctl = provenance.controller()
        self._write(runs.insert().values(
            id=run_id, started_at=provenance.now(), git_commit=ctl["git_commit"],
            harness_version=ctl["harness_version"], tag=tag, settings=json.dumps(settings or {})))
        return run_id

    def finish_run(self, run_id: str) -> None:
        self._write(runs.update().where(runs.c.id == run_id).values(finished_at=provenance.now()))

    def runs(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.started_at)).mappings().all()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------ measurements

    def save(self, m: Measurement) -> int:
        """Commit one measurement now; returns its id."""
        energy = (m.energy or {}).get("energy_per_inference_j")
        result = self._write(measurements.insert().values(
            run_id=m.run_id, created_at=m.created_at, device=m.device, model=m.model,
            variant=m.variant, technique=m.technique, format=m.format, model_sha256=m.model_sha256,
            emulated=m.emulated, n=m.latency.n, mean_ms=m.latency.mean_ms, p50_ms=m.latency.p50_ms,
            p90_ms=m.latency.p90_ms, p99_ms=m.latency.p99_ms, peak_rss_kb=m.memory.peak_rss_kb,
            accuracy=m.accuracy, size_bytes=m.size_bytes, energy_per_inference_j=energy,
            data=json.dumps(m.to_dict(), default=str)))
        m.id = int(result.inserted_primary_key[0])
        return m.id

    def measurements(self, run_id: Optional[str] = None) -> list[Measurement]:
        query = sa.select(measurements.c.id, measurements.c.run_id, measurements.c.data).order_by(measurements.c.id)
        if run_id is not None:
            query = query.where(measurements.c.run_id == run_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for row in rows:
            m = Measurement.from_dict(json.loads(row.data))
            m.id, m.run_id = row.id, row.run_id
            out.append(m)
        return out

    def _write(self, statement):
        try:
            with self.engine.begin() as conn:
                return conn.execute(statement)
        except Exception as exc:
            raise StoreError(f"store {redact(self.url)}: write failed: {_first_line(exc)}") from None

    def close(self):
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")     # readers (a report) never block the writer
    cur.execute("PRAGMA busy_timeout=30000")   # parallel workers wait instead of failing
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
