"""The store's tables and their migrations: what a store file or database holds, and how an
older one is brought to the current layout. `Store` (harness/store.py) reads and writes
through these; leases (harness/lease.py) through `leases_table`.

The table objects end in `_table` so they never read like the Store's methods of the same
subject (`Store.runs()` lists runs; `runs_table` is the SQL table).
"""
from __future__ import annotations

import json
import time

import sqlalchemy as sa

from . import provenance, samples as sample_codec
from .errors import StoreError


metadata = sa.MetaData()

runs_table = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("harness_version", sa.String(32)),
    sa.Column("tag", sa.String(200)),
    sa.Column("settings", sa.Text, nullable=False, default="{}"),
)

measurements_table = sa.Table(
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
    sa.Column("data", sa.Text, nullable=False),      # the Measurement without its samples, as JSON
    sa.Column("samples", sa.LargeBinary),             # harness/samples.py blob; NULL once pruned
    sa.Column("verdict", sa.String(16)),              # validity verdict: valid | invalid | NULL
)

# One row: the schema version this store has been migrated to (see MIGRATIONS).
schema_version_table = sa.Table(
    "schema_version", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("migrated_at", sa.String(40)),
)

# A board locked for a run: one row per device; expires unless renewed (see harness/lease.py).
leases_table = sa.Table(
    "leases", metadata,
    sa.Column("device", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(300), nullable=False),   # host:pid of the pytest process
    sa.Column("run_id", sa.String(32)),
    sa.Column("acquired_at", sa.Float, nullable=False),   # epoch seconds (UTC)
    sa.Column("expires_at", sa.Float, nullable=False),
)

# A run compared against a baseline: the verdicts of every gate, as JSON.
comparisons_table = sa.Table(
    "comparisons", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("base_run", sa.String(32), nullable=False),
    sa.Column("new_run", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("gates", sa.Text, nullable=False),
    sa.Column("regressions", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)


def verdict_column(validity) -> str | None:
    """The value of the `verdict` column for a measurement's validity (None before validity existed)."""
    verdict = validity.get("verdict") if isinstance(validity, dict) else None
    return str(verdict) if verdict is not None else None


# ------------------------------------------------------------------ migrations
# An ordered list: migration i brings a store from version i to i + 1. Append, never edit:
# a lab's PostgreSQL store outlives many harness versions.

def _m1_runs_and_measurements(conn):
    # Stores made before versioning already have these tables; checkfirst keeps them.
    metadata.create_all(conn, tables=[runs_table, measurements_table], checkfirst=True)


def _m2_leases(conn):
    metadata.create_all(conn, tables=[leases_table], checkfirst=True)


def _m3_comparisons_and_key_index(conn):
    metadata.create_all(conn, tables=[comparisons_table], checkfirst=True)
    # raw DDL: an sa.Index object would attach itself to the table for every later create_all
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_measurements_key "
                         "ON measurements (device, model, variant)"))


def _m4_binary_samples(conn):
    """Samples move from the row's JSON to a compact binary column (BLOB / bytea); a `verdict`
    column. Every existing row converts in place, in batches; a row whose samples cannot be
    encoded exactly keeps them in its JSON (nothing is lost; readers accept both)."""
    # run lists (every CLI command, every report) read (run_id, device) from this index alone,
    # not from a table whose rows now reach into the samples' pages
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_measurements_run_device ON measurements (run_id, device)"))
    have = {c["name"] for c in sa.inspect(conn).get_columns("measurements")}
    for column in (measurements_table.c.samples, measurements_table.c.verdict):
        if column.name not in have:
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE measurements ADD COLUMN {column.name} {kind}"))
    update = (measurements_table.update().where(measurements_table.c.id == sa.bindparam("row_id"))
              .values(data=sa.bindparam("new_data"), samples=sa.bindparam("blob"),
                      verdict=sa.bindparam("new_verdict")))
    last = -1
    while True:
        m = measurements_table
        rows = conn.execute(sa.select(m.c.id, m.c.data).where(m.c.id > last).order_by(m.c.id).limit(500)).all()
        if not rows:
            return
        last = rows[-1].id
        changes = []
        for row in rows:
            d = json.loads(row.data)
            if "samples_ns" not in d:
                continue
            try:
                blob = sample_codec.encode(d["samples_ns"] if d["samples_ns"] is not None else [])
            except sample_codec.SampleCodecError:
                continue
            del d["samples_ns"]
            changes.append({"row_id": row.id, "new_data": json.dumps(d), "blob": blob,
                            "new_verdict": verdict_column(d.get("validity"))})
        if changes:
            conn.execute(update, changes)


MIGRATIONS = [_m1_runs_and_measurements, _m2_leases, _m3_comparisons_and_key_index, _m4_binary_samples]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    row = conn.execute(sa.select(schema_version_table.c.version).where(schema_version_table.c.id == 1)).first()
    return row.version if row else 0


def migrate(engine, attempts: int = 5) -> int:
    """Bring the store to SCHEMA_VERSION; safe when several processes open it at once."""
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    # xdist workers and parallel CI jobs migrate one at a time
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(74110001)"))
                version = current_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(f"the store has schema version {version}, newer than this harness "
                                     f"knows ({SCHEMA_VERSION}); upgrade the harness")
                if version == SCHEMA_VERSION:
                    return version
                metadata.create_all(conn, tables=[schema_version_table], checkfirst=True)
                for step in MIGRATIONS[version:]:
                    step(conn)
                stamp = {"version": SCHEMA_VERSION, "migrated_at": provenance.now()}
                if conn.execute(sa.update(schema_version_table).where(schema_version_table.c.id == 1)
                                .values(**stamp)).rowcount == 0:
                    conn.execute(sa.insert(schema_version_table).values(id=1, **stamp))
                return SCHEMA_VERSION
        except StoreError:
            raise
        except sa.exc.DBAPIError:
            # SQLite: another process migrated between our read and our write; look again
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return SCHEMA_VERSION


def open_engine(url, **options):
    """An engine on the store's URL; on SQLite every connection gets the pragmas below."""
    engine = sa.create_engine(url, future=True, **options)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")     # readers (a report) never block the writer
    cur.execute("PRAGMA busy_timeout=30000")   # parallel workers wait instead of failing
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
