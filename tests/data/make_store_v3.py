"""Writes tests/data/store-v3.sqlite: a small store in the format of schema version 3 (samples
as JSON text inside each row), made with the harness as it was before issue 17 (commit f55f1cc).

Kept to show how the committed fixture was made; run from a checkout of that commit:

    git worktree add /tmp/v3 f55f1cc && cd /tmp/v3 && PYTHONPATH=$PWD python <this file> OUT.sqlite

Later harness versions must open the file and migrate it in place (tests/test_store_migration.py).
"""
import sqlalchemy as sa
import sys
from pathlib import Path

from harness.compare import compare_runs, parse_gates
from harness.store import Store, measurements, runs

sys.path.insert(0, str(Path.cwd() / "tests"))
from labci_fakes import fake_measurement  # noqa: E402


def main(out: str) -> None:
    store = Store(f"sqlite:///{out}")
    old = store.start_run(settings={"min_duration_s": 1.0}, tag="nightly-2026-01-01")
    made = [
        fake_measurement(run_id=old, variant="fp32", n=300, seed=1),
        fake_measurement(run_id=old, variant="int8", n=300, seed=2, median_ns=4e5),
        # an MCU-like inference of ~12 s: samples beyond 2^32 ns
        fake_measurement(run_id=old, device="qemu-m3", variant="fp32", n=5, seed=3, median_ns=1.2e10),
    ]
    made[0].energy = {"energy_per_inference_j": 0.002, "avg_power_w": 2.0}
    for m in made:
        store.save(m)
    store.finish_run(old)
    new = store.start_run(tag="nightly-2026-03-01")
    later = [fake_measurement(run_id=new, variant="fp32", n=300, seed=4, median_ns=1.1e6),
             fake_measurement(run_id=new, variant="int8", n=1, seed=5, median_ns=4e5)]
    for m in later:
        store.save(m)
    store.finish_run(new)
    gates = parse_gates(["p50:5%"])
    store.save_comparison(compare_runs(made[:2], later, gates, old, new), gates)
    with store.engine.begin() as conn:  # fixed times, so retention tests can reason about ages
        for run_id, day in ((old, "2026-01-01"), (new, "2026-03-01")):
            conn.execute(runs.update().where(runs.c.id == run_id).values(
                started_at=f"{day}T02:00:00+00:00", finished_at=f"{day}T02:30:00+00:00"))
            conn.execute(measurements.update().where(measurements.c.run_id == run_id).values(
                created_at=f"{day}T02:10:00+00:00"))
    store.close()
    engine = sa.create_engine(f"sqlite:///{out}")
    with engine.connect() as conn:  # one self-contained file: no -wal beside it
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1])
