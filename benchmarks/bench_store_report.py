"""Benchmarks of lab CI's store and report (issue 7).

    python benchmarks/bench_store_report.py                 # SQLite, and PostgreSQL when found
    python benchmarks/bench_store_report.py --measurements 10000 --samples 200 --pg-url postgresql+psycopg://...

report  10,000 stored measurements (50 nightly runs x 10 boards x 20 variants, `--samples`
        per-inference samples each): time to render the report of the newest run (200
        measurements, with the 50-run trend drawn from all 10,000) and of all runs, and the
        HTML sizes.
write   store write latency per measurement (one committed transaction each, as a run writes
        them): median and p95 on SQLite (a file on this disk) and PostgreSQL 15 (loopback;
        a throwaway server is started when Debian's postgresql is installed and no --pg-url).
Figures only: the machine is shared and noisy, nothing here asserts.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from harness.report import write_report  # noqa: E402
from harness.store import Store  # noqa: E402
from labci_fakes import fake_measurement  # noqa: E402


def fill(store: Store, total: int, samples: int) -> str:
    boards, variants = 10, 20
    runs = max(1, total // (boards * variants))
    last = None
    made = 0
    for r in range(runs):
        last = store.start_run(tag=f"nightly-{r}")
        for b in range(boards):
            for v in range(variants):
                m = fake_measurement(device=f"board-{b}", model="digits-cnn", variant=f"v{v:02d}",
                                     median_ns=(1 + v) * 1e5 * (1 + 0.01 * (r % 5)), n=samples, seed=made,
                                     accuracy=0.9 + 0.004 * v)
                m.run_id = last
                store.save(m)
                made += 1
        store.finish_run(last)
    return last


def bench_report(total: int, samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/h.sqlite")
        t = time.perf_counter()
        last = fill(store, total, samples)
        fill_s = time.perf_counter() - t
        n = len(store.trend_rows())
        print(f"report: {n} measurements stored ({samples} samples each) in {fill_s:.1f}s")
        for scope, run_id in (("newest run + trend", last), ("all runs", None)):
            t = time.perf_counter()
            path = write_report(store, Path(tmp) / f"report-{scope[:3]}.html", run_id=run_id)
            took = time.perf_counter() - t
            print(f"report: {scope:20s} {took:6.2f} s   HTML {path.stat().st_size / 1e6:7.1f} MB")
        store.close()


def bench_writes(url: str, label: str, count: int) -> None:
    store = Store(url)
    run_id = store.start_run(tag="bench-write")
    ms = [fake_measurement(seed=i, n=2000, run_id=run_id) for i in range(count)]
    times = []
    for m in ms:
        t = time.perf_counter()
        store.save(m)
        times.append(time.perf_counter() - t)
    times.sort()
    print(f"write:  {label:11s} {count} measurements (2000 samples each): median "
          f"{1e3 * statistics.median(times):.2f} ms, p95 {1e3 * times[int(0.95 * len(times))]:.2f} ms per measurement")
    store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measurements", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=200, help="per-inference samples per measurement")
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--pg-url", help="an existing PostgreSQL store to write to (default: start one)")
    ap.add_argument("--skip-report", action="store_true")
    args = ap.parse_args()
    if not args.skip_report:
        bench_report(args.measurements, args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        bench_writes(f"sqlite:///{tmp}/w.sqlite", "SQLite", args.writes)
    if args.pg_url:
        bench_writes(args.pg_url, "PostgreSQL", args.writes)
        return 0
    from labci_postgres import Unavailable, postgres_server

    try:
        with postgres_server() as url:
            bench_writes(url, "PostgreSQL", args.writes)
    except Unavailable as exc:
        print(f"write:  PostgreSQL  skipped: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
