"""The store on SQLite and on a real PostgreSQL server: migrations, runs, exports, leases."""
import json
import threading

import pytest
import sqlalchemy as sa

from harness import store as store_mod
from harness.errors import StoreError
from harness.lease import LeaseBusy, LeaseManager
from harness.store import SCHEMA_VERSION, Store
from labci_fakes import fake_measurement
from labci_postgres import postgres_url  # noqa: F401  (fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
        engine = sa.create_engine(url)
        with engine.begin() as conn:  # a clean schema per test on the shared server
            for table in ("comparisons", "measurements", "runs", "leases", "schema_version"):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table} CASCADE"))
        engine.dispose()
    s = Store(url)
    yield s
    s.close()


def test_fresh_store_is_at_the_latest_schema(store):
    with store.engine.connect() as conn:
        assert store_mod.current_version(conn) == SCHEMA_VERSION
        names = set(sa.inspect(conn).get_table_names())
    assert {"runs", "measurements", "leases", "comparisons", "schema_version"} <= names
    Store(store.url).close()  # reopening migrates nothing and fails nothing


def test_pre_versioning_store_is_migrated_and_keeps_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    store_mod.metadata.create_all(engine, tables=[store_mod.runs, store_mod.measurements])
    with engine.begin() as conn:
        conn.execute(store_mod.runs.insert().values(id="oldrun", started_at="2026-01-01T00:00:00+00:00",
                                                     settings="{}"))
    engine.dispose()
    s = Store(url)
    assert [r["id"] for r in s.runs()] == ["oldrun"]
    with s.engine.connect() as conn:
        assert store_mod.current_version(conn) == SCHEMA_VERSION
    assert s.leases() == []


def test_newer_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    Store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(store_mod.schema_version.update().values(version=SCHEMA_VERSION + 1))
    engine.dispose()
    with pytest.raises(StoreError, match="newer than this harness"):
        Store(url)


def test_runs_resolve_and_exports(store):
    a = store.start_run(settings={"min_duration_s": 0.2}, tag="nightly")
    store.save(fake_measurement(run_id=a, seed=1))
    store.save(fake_measurement(run_id=a, variant="int8", seed=2))
    store.finish_run(a)
    b = store.start_run(tag="adhoc")
    store.save(fake_measurement(run_id=b, seed=3))
    empty = store.start_run()
    runs = {r["id"]: r for r in store.runs()}
    assert runs[a]["measurements"] == 2 and runs[a]["devices"] == ["local"]
    assert runs[a]["settings"] == {"min_duration_s": 0.2} and runs[a]["finished_at"]
    assert store.resolve_run("latest") == b
    assert store.resolve_run("latest", exclude=b) == a
    assert store.resolve_run("nightly") == a
    assert store.resolve_run(a[:6]) == a
    assert store.resolve_run(empty) == empty
    with pytest.raises(StoreError, match="neither 'latest'"):
        store.resolve_run("no-such-thing")
    df = store.dataframe(a)
    assert list(df["variant"]) == ["fp32", "int8"] and set(df["run_id"]) == {a}
    assert len(store.trend_rows()) == 3


def test_comparisons_round_trip(store):
    from harness.compare import compare_runs, parse_gates

    a, b = store.start_run(), store.start_run()
    gates = parse_gates(["p50:5%"])
    comparison = compare_runs([fake_measurement(run_id=a, seed=1)],
                              [fake_measurement(run_id=b, seed=2, median_ns=1.3e6)], gates, a, b)
    store.save_comparison(comparison, gates)
    [row] = store.comparisons([b])
    assert row["regressions"] == 1 and row["gates"] == ["p50:5%"]
    assert row["data"]["verdicts"][0]["regression"] is True


def test_lease_is_exclusive_until_it_expires(store, monkeypatch):
    assert store.try_lease("board", "hostA:1", ttl_s=60)
    assert not store.try_lease("board", "hostB:2", ttl_s=60)
    assert store.try_lease("board", "hostA:1", ttl_s=60)       # re-entrant for its holder
    assert store.renew_lease("board", "hostA:1", 60)
    assert not store.renew_lease("board", "hostB:2", 60)
    [row] = store.leases()
    assert row["holder"] == "hostA:1"
    # time passes beyond the expiry: the lease is free for the next job
    real = store_mod.time.time
    monkeypatch.setattr(store_mod.time, "time", lambda: real() + 120)
    assert store.try_lease("board", "hostB:2", ttl_s=60)
    monkeypatch.setattr(store_mod.time, "time", real)
    assert not store.renew_lease("board", "hostA:1", 60)        # the old holder lost it
    store.release_lease("board", "hostB:2")
    assert store.leases() == []


def test_only_one_of_many_racing_takers_wins(store):
    wins, barrier = [], threading.Barrier(8)

    def take(i):
        barrier.wait(timeout=30)
        if store.try_lease("racy", f"h:{i}", ttl_s=60):
            wins.append(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(wins) == 1


def test_lease_manager_waits_then_names_the_holder(store):
    other = LeaseManager(store, ttl_s=30, holder="ci-runner-7:4242", run_id="abc")
    other.acquire("jetson")
    mine = LeaseManager(store, ttl_s=30, wait_s=0.3, holder="me:1", poll_s=0.1)
    with pytest.raises(LeaseBusy) as info:
        mine.acquire("jetson")
    assert "ci-runner-7:4242" in str(info.value) and "jetson" in str(info.value)
    other.release_all()
    mine.acquire("jetson")
    assert [r["holder"] for r in store.leases()] == ["me:1"]
    mine.release_all()


def test_lease_manager_renews_in_the_background(store):
    manager = LeaseManager(store, ttl_s=0.6, holder="renewer:1")
    manager.acquire("pi")
    first = store.leases()[0]["expires_at"]
    done = threading.Event()
    for _ in range(100):  # renewal every ttl/3; wait (bounded) until one landed
        if store.leases()[0]["expires_at"] > first:
            done.set()
            break
        threading.Event().wait(0.05)
    manager.release_all()
    assert done.is_set() and not manager.lost
    assert store.leases() == []


def test_a_lapsed_lease_stops_measuring_on_that_board(store):
    from harness.errors import DeviceError

    mine = LeaseManager(store, ttl_s=0.6, holder="stalled:1")
    mine.acquire("pi")
    # Another run took the board after our lease lapsed (as after a long stall of this process).
    store.release_lease("pi", "stalled:1")
    assert store.try_lease("pi", "other:2", ttl_s=60)
    for _ in range(100):  # the next renewal notices; bounded wait
        if "pi" in mine.lost:
            break
        threading.Event().wait(0.05)
    with pytest.raises(DeviceError, match="lease on the board lapsed"):
        mine.check("pi")
    assert "pi" not in mine.held  # no longer renewed: the other run's lease is left alone
    mine.release_all()
    assert [r["holder"] for r in store.leases()] == ["other:2"]
