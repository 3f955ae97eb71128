"""Retention: `prune` drops old per-inference samples and keeps every summary, verdict, comparison
and provenance; `stats` says rows and bytes. On SQLite and on a real PostgreSQL server."""
import datetime as dt
import json

import pytest
import sqlalchemy as sa

from harness import store_tables
from harness.cli import main, parse_keep
from harness.compare import compare_runs, parse_gates
from harness.errors import HarnessError, StoreError
from harness.store import Store
from fake_measurements import fake_measurement
from labci_postgres import empty_store_url, postgres_url  # noqa: F401  (postgres_url: fixture)

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.timezone.utc)
DAYS_AGO = (200, 120, 91, 89, 10, 0)  # six nightly runs


@pytest.fixture(params=["sqlite", "postgresql"])
def aged_store(request, tmp_path):
    store = Store(empty_store_url(request, tmp_path))
    run_ids = []
    for night, age in enumerate(DAYS_AGO):
        run_id = store.start_run(tag=f"night-{night}")
        for variant in ("fp32", "int8"):
            m = fake_measurement(run_id=run_id, variant=variant, n=3000, seed=10 * night + len(variant))
            m.validity = {"verdict": "invalid" if night == 1 else "valid", "reasons": []}
            store.save(m)
        with store.engine.begin() as conn:
            started = (NOW - dt.timedelta(days=age)).isoformat()
            conn.execute(store_tables.runs_table.update().where(store_tables.runs_table.c.id == run_id).values(started_at=started))
        run_ids.append(run_id)
    gates = parse_gates(["p50:5%"])
    store.save_comparison(compare_runs(store.measurements(run_ids[0]), store.measurements(run_ids[1]), gates,
                                       run_ids[0], run_ids[1]), gates)
    yield store, run_ids
    store.close()


def everything_but_samples(store):
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            sa.select(*[c for c in store_tables.measurements_table.c if c.name != "samples"])
            .order_by(store_tables.measurements_table.c.id))]
    return {"rows": rows, "runs": store.runs(), "comparisons": store.comparisons(),
            "trend": store.trend_rows(), "frame": store.dataframe().to_dict("records"),
            "measurements": [{**m.to_dict(), "samples_ns": None} for m in store.measurements(samples=False)]}


def samples_by_run(store):
    out = {}
    for m in store.measurements():
        out.setdefault(m.run_id, []).append(m.samples_ns)
    return out


def test_prune_by_age_keeps_every_summary(aged_store):
    store, run_ids = aged_store
    before, samples_before = everything_but_samples(store), samples_by_run(store)
    assert [r["verdict"] for r in before["rows"]][:4] == ["valid", "valid", "invalid", "invalid"]
    assert store.prune_samples(keep_days=90, now=NOW, dry_run=True)["measurements"] == 6
    assert samples_by_run(store) == samples_before  # a dry run changes nothing
    done = store.prune_samples(keep_days=90, now=NOW)
    assert done["measurements"] == 6 and done["runs"] == 3 and done["bytes"] > 0
    assert everything_but_samples(store) == before  # every column, JSON, verdict, comparison, run
    after = samples_by_run(store)
    for run_id, age in zip(run_ids, DAYS_AGO):
        if age > 90:
            assert after[run_id] == [None, None]
        else:
            assert after[run_id] == samples_before[run_id]  # exact, untouched
    stats = store.stats()
    assert stats["measurements"] == 12 and stats["with_samples"] == 6 and stats["pruned"] == 6
    assert stats["samples"] == 6 * 3000 and 0 < stats["bytes_per_sample"] < 4
    assert store.prune_samples(keep_days=90, now=NOW)["measurements"] == 0  # nothing left to drop


def test_prune_by_run_count_and_vacuum(aged_store):
    store, run_ids = aged_store
    before = everything_but_samples(store)
    size_before = store.stats()["database_bytes"]
    done = store.prune_samples(keep_runs=2)
    assert done["runs"] == 4
    assert everything_but_samples(store) == before
    kept = {run_id for run_id, s in samples_by_run(store).items() if s[0] is not None}
    assert kept == set(run_ids[-2:])
    store.vacuum()
    if store.engine.dialect.name == "sqlite":  # PostgreSQL's plain VACUUM keeps the space for reuse
        assert store.stats()["database_bytes"] < size_before


def test_cli_stats_and_prune(aged_store, capsys):
    store, run_ids = aged_store
    assert main(["store", "stats", "--store", store.url]) == 0
    out = capsys.readouterr().out
    assert "6 runs, 12 measurements (12 with samples, 0 without)" in out and "bytes per sample" in out
    assert main(["store", "prune", "--keep-samples", "3", "--dry-run", "--store", store.url]) == 0
    assert "would drop the samples of 6 measurements in 3 runs" in capsys.readouterr().out
    assert main(["store", "prune", "--keep-samples", "3runs", "--store", store.url]) == 0
    assert "dropped the samples of 6 measurements" in capsys.readouterr().out
    assert main(["store", "stats", "--store", store.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pruned"] == 6


@pytest.mark.parametrize("text, expected", [
    ("90d", {"keep_days": 90.0}), ("12w", {"keep_days": 84.0}), ("36h", {"keep_days": 1.5}),
    ("30", {"keep_runs": 30}), ("30runs", {"keep_runs": 30}),
])
def test_keep_samples_values(text, expected):
    assert parse_keep(text) == expected


@pytest.mark.parametrize("text", ["", "90 days", "-5d", "d", "3.5"])
def test_keep_samples_bad_values_are_named(text):
    with pytest.raises(HarnessError, match="--keep-samples: expected a time like 90d"):
        parse_keep(text)


def test_prune_needs_exactly_one_rule(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    with pytest.raises(StoreError, match="exactly one"):
        store.prune_samples()
    with pytest.raises(StoreError, match="exactly one"):
        store.prune_samples(keep_days=1, keep_runs=1)
