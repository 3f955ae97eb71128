"""A store written by the previous release (schema 3: samples as JSON text in every row)
migrates in place, on SQLite and on a real PostgreSQL server, losing nothing."""
import json
import shutil

import pytest
import sqlalchemy as sa

from harness import store_tables
from harness.store import Store
from harness.store_tables import SCHEMA_VERSION
from labci_postgres import empty_store_url, postgres_url  # noqa: F401  (postgres_url: fixture)
from paths import TESTS

FIXTURE = TESTS / "data" / "store-v3.sqlite"  # made by tests/data/make_store_v3.py


def fixture_rows():
    """The fixture's measurements as the old release stored them: id -> JSON document."""
    engine = sa.create_engine(f"sqlite:///{FIXTURE}")
    with engine.connect() as conn:
        rows = {r.id: json.loads(r.data) for r in conn.execute(sa.text("SELECT id, data FROM measurements"))}
        version = conn.execute(sa.text("SELECT version FROM schema_version")).scalar()
    engine.dispose()
    assert version == 3 and len(rows) == 5 and all("samples_ns" in d for d in rows.values())
    return rows


def copy_fixture_to(url):
    """The fixture's tables and rows, exactly as they are, in another database (one without
    the harness's tables)."""
    source = sa.create_engine(f"sqlite:///{FIXTURE}")
    target = sa.create_engine(url)
    old = sa.MetaData()
    old.reflect(source)
    with target.begin() as conn:
        old.create_all(conn)
        with source.connect() as src:
            for table in old.sorted_tables:
                rows = [dict(r._mapping) for r in src.execute(table.select())]
                if rows:
                    conn.execute(table.insert(), rows)
    source.dispose()
    target.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store_url(request, tmp_path):
    if request.param == "sqlite":
        shutil.copy(FIXTURE, tmp_path / "old.sqlite")
        return f"sqlite:///{tmp_path / 'old.sqlite'}"
    url = empty_store_url(request, tmp_path)  # the shared server, earlier tests' tables dropped
    copy_fixture_to(url)
    return url


def test_previous_release_store_migrates_in_place(old_store_url):
    before = fixture_rows()
    store = Store(old_store_url)
    with store.engine.connect() as conn:
        assert store_tables.current_version(conn) == SCHEMA_VERSION
        columns = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns("measurements")}
        raw = {r.id: (json.loads(r.data), r.samples, r.verdict) for r in conn.execute(
            sa.select(store_tables.measurements_table.c.id, store_tables.measurements_table.c.data,
                      store_tables.measurements_table.c.samples, store_tables.measurements_table.c.verdict))}
    assert isinstance(columns["samples"], sa.LargeBinary)  # BLOB on SQLite, bytea on PostgreSQL
    # every row converted: samples out of the JSON into the blob, everything else untouched
    for mid, old in before.items():
        data, blob, verdict = raw[mid]
        assert "samples_ns" not in data and blob is not None and verdict is None
        assert data == {k: v for k, v in old.items() if k != "samples_ns"}
        assert len(old["samples_ns"]) < 10 or len(blob) < len(json.dumps(old["samples_ns"])) / 2
    back = {m.id: m for m in store.measurements()}
    assert set(back) == set(before)
    for mid, old in before.items():
        assert back[mid].samples_ns == old["samples_ns"]           # exact, huge MCU values too
        latency = back[mid].latency.to_dict()
        assert {k: v for k, v in latency.items() if k in old["latency"]} == old["latency"]
        assert back[mid].latency.rounds == 1        # stored before rounds: one round assumed
        assert back[mid].energy == old["energy"]
    assert max(max(d["samples_ns"]) for d in before.values()) > 2 ** 32
    # runs, tags and the stored comparison came through; trends read the columns
    assert [r["tag"] for r in store.runs()] == ["nightly-2026-01-01", "nightly-2026-03-01"]
    [comparison] = store.comparisons()
    assert comparison["gates"] == ["p50:5%"]
    assert len(store.trend_rows()) == 5
    store.close()
    Store(old_store_url).close()  # reopening migrates nothing again


def test_fractional_samples_convert_and_unencodable_ones_stay_in_the_json(tmp_path):
    path = tmp_path / "odd.sqlite"
    shutil.copy(FIXTURE, path)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for row_id, odd in ((5, [1.5, 2.25]), (4, [None, 3])):  # a serial board's averages; a broken row
            data = json.loads(conn.execute(sa.text(f"SELECT data FROM measurements WHERE id = {row_id}")).scalar())
            data["samples_ns"] = odd
            conn.execute(sa.text("UPDATE measurements SET data = :d WHERE id = :i"), {"d": json.dumps(data), "i": row_id})
    engine.dispose()
    store = Store(f"sqlite:///{path}")
    with store.engine.connect() as conn:
        blobs = dict(conn.execute(sa.select(store_tables.measurements_table.c.id, store_tables.measurements_table.c.samples)).all())
    assert blobs[5] is not None and blobs[4] is None  # nothing lost: the unencodable row kept its JSON
    back = {m.id: m for m in store.measurements()}
    assert back[5].samples_ns == [1.5, 2.25] and back[4].samples_ns == [None, 3]
    assert back[1].samples_ns == fixture_rows()[1]["samples_ns"]
    store.close()
