"""The store on SQLite and on a real PostgreSQL server: migrations, runs, exports, leases."""
import logging
import threading

import pytest
import sqlalchemy as sa

from harness import store_tables
from harness.errors import StoreError
from harness.errors import DeviceError
from harness.lease import LeaseBusy, LeaseManager, LeaseTable
from harness.store import Store
from harness.store_tables import SCHEMA_VERSION
from fake_measurements import fake_measurement
from labci_postgres import empty_store_url, postgres_url  # noqa: F401  (postgres_url: fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    s = Store(empty_store_url(request, tmp_path))
    yield s
    s.close()


def test_fresh_store_is_at_the_latest_schema(store):
    with store.engine.connect() as conn:
        assert store_tables.current_version(conn) == SCHEMA_VERSION
        names = set(sa.inspect(conn).get_table_names())
    assert {"runs", "measurements", "leases", "comparisons", "schema_version"} <= names
    Store(store.url).close()  # reopening migrates nothing and fails nothing


def test_pre_versioning_store_is_migrated_and_keeps_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    store_tables.metadata.create_all(engine, tables=[store_tables.runs_table, store_tables.measurements_table])
    with engine.begin() as conn:
        conn.execute(store_tables.runs_table.insert().values(id="oldrun", started_at="2026-01-01T00:00:00+00:00",
                                                     settings="{}"))
    engine.dispose()
    s = Store(url)
    assert [r["id"] for r in s.runs()] == ["oldrun"]
    with s.engine.connect() as conn:
        assert store_tables.current_version(conn) == SCHEMA_VERSION
    assert s.leases.all() == []


def test_newer_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    Store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(store_tables.schema_version_table.update().values(version=SCHEMA_VERSION + 1))
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
    # the frame takes what the CLI's RUN argument takes
    assert set(store.dataframe(a[:6])["run_id"]) == {a} and set(store.dataframe("nightly")["run_id"]) == {a}
    assert set(store.dataframe("latest")["run_id"]) == {b}
    assert len(store.dataframe("all")) == 3 and len(store.dataframe()) == 3
    assert len(store.trend_rows()) == 3


def test_one_run_is_looked_up_by_its_id(store):
    a = store.start_run(tag="a")
    store.save(fake_measurement(run_id=a, seed=1))
    b = store.start_run(tag="b")
    store.save(fake_measurement(run_id=b, seed=2, device="pi"))
    store.save(fake_measurement(run_id=b, seed=3, device="pi", variant="int8"))
    statements = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda conn, cursor, statement, params, *_: statements.append((statement, params)))
    row = store.run(b)
    assert (row["tag"], row["measurements"], row["devices"]) == ("b", 2, ["pi"])
    # every statement is narrowed to the run (no scan of every run for one of them)
    assert statements and all(b in str(params) for _, params in statements)
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.run("nope")


def test_comparisons_round_trip(store):
    from harness.compare import compare_runs, parse_gates

    a, b = store.start_run(), store.start_run()
    gates = parse_gates(["p50:5%"])
    comparison = compare_runs([fake_measurement(run_id=a, seed=1)],
                              [fake_measurement(run_id=b, seed=2, median_ms=1.3)], gates, a, b)
    store.save_comparison(comparison, gates)
    [row] = store.comparisons([b])
    assert row["regressions"] == 1 and row["gates"] == ["p50:5%"]
    assert row["data"]["verdicts"][0]["regression"] is True


def test_lease_is_exclusive_until_it_expires(store):
    clock = SteppedClock(start=1_000_000.0)
    table = LeaseTable(store.engine.url, clock=clock)
    assert table.take("board", "hostA:1", ttl_s=60)
    assert not table.take("board", "hostB:2", ttl_s=60)
    assert table.take("board", "hostA:1", ttl_s=60)       # re-entrant for its holder
    assert table.renew("board", "hostA:1", 60)
    assert not table.renew("board", "hostB:2", 60)
    [row] = store.leases.all()
    assert row["holder"] == "hostA:1" and row["expires_at"] == 1_000_060.0
    clock.sleep(59)
    assert not table.take("board", "hostB:2", ttl_s=60)    # not yet expired
    clock.sleep(2)                                          # beyond the expiry: free for the next job
    assert table.take("board", "hostB:2", ttl_s=60)
    assert not table.renew("board", "hostA:1", 60)        # the old holder lost it
    table.release("board", "hostB:2")
    assert store.leases.all() == []
    table.close()


def test_only_one_of_many_racing_takers_wins(store):
    wins, barrier = [], threading.Barrier(8)

    def take(i):
        barrier.wait(timeout=30)
        if store.leases.take("racy", f"h:{i}", ttl_s=60):
            wins.append(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(wins) == 1


class SteppedClock:
    """Monotonic seconds that move only when a test (or the code under test) sleeps."""

    def __init__(self, start: float = 0.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def manager(store, clock, **options):
    return LeaseManager(store, clock=clock, sleep=clock.sleep, renew_in_background=False, **options)


def test_lease_manager_waits_then_names_the_holder(store):
    clock = SteppedClock()
    other = manager(store, clock, ttl_s=30, holder="ci-runner-7:4242", run_id="abc")
    other.acquire("jetson")
    mine = manager(store, clock, ttl_s=30, wait_s=5, holder="me:1", poll_s=1)
    with pytest.raises(LeaseBusy) as info:
        mine.acquire("jetson")
    assert "ci-runner-7:4242" in str(info.value) and "jetson" in str(info.value)
    assert clock.now == 5   # it polled until wait_s had passed on its clock, then gave up
    other.release_all()
    mine.acquire("jetson")
    assert [r["holder"] for r in store.leases.all()] == ["me:1"]
    mine.release_all()


def test_renewal_pushes_the_expiry_and_keeps_the_lease_fresh(store):
    clock = SteppedClock()
    mine = manager(store, clock, ttl_s=30, holder="renewer:1")
    mine.acquire("pi")
    first = store.leases.all()[0]["expires_at"]
    clock.sleep(20)
    mine.renew_once()
    assert store.leases.all()[0]["expires_at"] > first
    clock.sleep(20)          # 40 s since the take, 20 s since the renewal: fresh
    mine.ensure_held("pi")
    mine.release_all()
    assert store.leases.all() == [] and not mine.lost


def test_a_lease_not_renewed_within_its_ttl_is_stale(store, caplog):
    """The store stops answering: each failed renewal is logged, and once the last good one is
    older than the ttl the board is refused (another run may take it any moment)."""
    clock = SteppedClock()
    mine = manager(store, clock, ttl_s=30, holder="cut-off:1")
    mine.acquire("pi")
    store.leases.engine.dispose()
    store.leases.engine = sa.create_engine("sqlite:////nonexistent-dir/unreachable.sqlite")
    clock.sleep(20)
    with caplog.at_level(logging.WARNING, logger="harness.lease"):
        mine.renew_once()
    assert "pi: lease renewal failed" in caplog.text
    mine.ensure_held("pi")         # 20 s since the take: still within the ttl
    clock.sleep(11)
    mine.renew_once()
    with pytest.raises(DeviceError, match="stale: last renewed 31 s ago"):
        mine.ensure_held("pi")


def test_a_lapsed_lease_stops_measuring_on_that_board(store):
    clock = SteppedClock()
    mine = manager(store, clock, ttl_s=30, holder="stalled:1")
    mine.acquire("pi")
    # Another run took the board after our lease lapsed (as after a long stall of this process).
    store.leases.release("pi", "stalled:1")
    assert store.leases.take("pi", "other:2", ttl_s=60)
    mine.renew_once()
    with pytest.raises(DeviceError, match="lease on the board lapsed"):
        mine.ensure_held("pi")
    assert "pi" not in mine.held  # no longer renewed: the other run's lease is left alone
    mine.release_all()
    assert [r["holder"] for r in store.leases.all()] == ["other:2"]


def test_the_background_thread_renews(store):
    """The thread calls renew_once (every 10 ms here, far within the ttl: the lease cannot lapse
    however slow the machine); the wait for the first renewal is bounded, nothing is timed."""
    mine = LeaseManager(store, ttl_s=60, holder="renewer:1", renew_every_s=0.01)
    mine.acquire("pi")
    first = store.leases.all()[0]["expires_at"]
    renewed = threading.Event()
    for _ in range(600):
        if store.leases.all()[0]["expires_at"] > first:
            renewed.set()
            break
        renewed.wait(0.05)
    mine.release_all()
    assert renewed.is_set()
