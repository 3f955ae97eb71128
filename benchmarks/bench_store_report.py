"""Benchmark of the store and the report at lab scale (issues 7 and 17): a synthetic year.

    python benchmarks/bench_store_report.py                       # the year, SQLite and PostgreSQL
    python benchmarks/bench_store_report.py --runs 30 --no-postgres   # a quick look

A year = --runs nightly runs (365) x --boards (10) x --variants (20) measurements of
--samples per-inference samples each (2,000), seeded. Every figure is measured twice in the
same run: with today's code (the store format of --baseline-ref, extracted from git into a
temporary directory) and with this checkout. On SQLite (a file on this disk) and PostgreSQL
15 (loopback, started as the tests start it: tests/labci_postgres.py, fsync off).

  store     bytes per measurement (database size / measurements) and per sample (the samples'
            own bytes: JSON text before, the binary column now); the codec's bytes per sample
            at 20,000 samples, extrapolated from an encoded series of that length
  write     one committed measurement of --write-samples (100,000) samples: median and p95
  report    the newest run's report with the whole year's trend: seconds, HTML bytes, peak RSS
            (a fresh process per figure), and the page's load time in headless Chromium
  export    the newest run as JSON and CSV; with this checkout also every run (streamed)
Figures only: the machine is shared and noisy, nothing here asserts.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from repo_root import ROOT as REPO
BASELINE_REF = "f55f1cc"  # the last commit before issue 17: samples as JSON text in every row


# ------------------------------------------------------------------ worker (runs with either code)

def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _key_stats(samples):
    from harness.stats import summarize

    return summarize(samples)


def worker_fill(args) -> dict:
    """A seeded year. The newest night goes through Store.save, one committed measurement at a
    time as a run writes them (timed: the 2,000-sample write figure); the earlier nights are
    copies of those rows, exactly as that code stored them, inserted in bulk (one transaction a
    night) with their own run, start time and a p50 column that drifts, wobbles and, for one
    series in seven, steps: the history a trend draws, without hours of setup."""
    import datetime as dt

    import numpy as np
    import sqlalchemy as sa
    from harness.measurement import Measurement, Memory
    from harness.store import Store

    store = Store(args.url)
    rng = np.random.default_rng(17)
    keys = [(f"board-{b}", f"v{v:02d}") for b in range(args.boards) for v in range(args.variants)]
    newest = store.start_run(tag=f"nightly-{args.runs - 1}")
    times = []
    for i, key in enumerate(keys):
        base = ((1 + i % 20) * 1e5 * rng.lognormal(0.0, 0.08, args.samples)).astype(np.int64)
        m = Measurement(
            device=key[0], model="digits-cnn", variant=key[1], technique=key[1], format="onnx",
            latency=_key_stats(base.tolist()), samples_ns=base.tolist(), timings_ms={"first_inference": 1.0},
            memory=Memory(peak_rss_kb=60000), accuracy=0.9, accuracy_n=360, host_accuracy=0.9,
            size_bytes=5000, storage_bytes=5000, n_params=1000, macs=10000, model_sha256="0" * 64,
            emulated=False, settings={"threads": 1}, provenance={"board": {"os": "bench"}}, run_id=newest)
        t = time.perf_counter()
        store.save(m)
        times.append(time.perf_counter() - t)
    store.finish_run(newest)
    start = time.perf_counter()
    table = sa.Table("measurements", sa.MetaData(), autoload_with=store.engine)
    runs = sa.Table("runs", sa.MetaData(), autoload_with=store.engine)
    with store.engine.connect() as conn:
        template = [dict(r._mapping) for r in conn.execute(sa.select(table).where(table.c.run_id == newest)
                                                           .order_by(table.c.id))]
        run_row = dict(conn.execute(sa.select(runs).where(runs.c.id == newest)).one()._mapping)
    steps = {key: int(rng.integers(args.runs // 10, args.runs + 1)) for key in keys[::7]}
    today = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.timezone.utc)
    for night in range(args.runs - 1):
        when = (today - dt.timedelta(days=args.runs - 1 - night)).isoformat()
        run_id = f"bench{night:07d}"
        drift = 1.0 + 0.01 * np.sin(night / 20)
        rows = []
        for row, key in zip(template, keys):
            shifted = 1 / 1.1 if night < steps.get(key, -1) else 1.0  # the newest night is after every step
            factor = drift * shifted * float(np.exp(rng.normal(0, 0.01)))
            copy = {k: v for k, v in row.items() if k != "id"}
            copy.update(run_id=run_id, created_at=when, p50_ms=row["p50_ms"] * factor)
            rows.append(copy)
        with store.engine.begin() as conn:
            conn.execute(runs.insert().values(**{**run_row, "id": run_id, "started_at": when, "finished_at": when,
                                                 "tag": f"nightly-{night}"}))
            conn.execute(table.insert(), rows)
    with store.engine.begin() as conn:  # the newest night last in time
        conn.execute(runs.update().where(runs.c.id == newest).values(started_at=today.isoformat()))
    copied = time.perf_counter() - start
    store.close()
    times.sort()
    return {"copy_s": copied, "measurements": args.runs * len(keys), "last_run": newest,
            "write_median_ms": 1e3 * statistics.median(times), "write_p95_ms": 1e3 * times[int(0.95 * (len(times) - 1))]}


def worker_size(args) -> dict:
    import sqlalchemy as sa
    from harness.store import Store

    store = Store(args.url)
    with store.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("measurements")}
        count = conn.execute(sa.text("SELECT count(*) FROM measurements")).scalar()
        json_chars = conn.execute(sa.text("SELECT sum(length(data)) FROM measurements")).scalar()
        blob = (conn.execute(sa.text("SELECT sum(length(samples)) FROM measurements")).scalar()
                if "samples" in columns else None)
        if store.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            total = (conn.exec_driver_sql("PRAGMA page_count").scalar()
                     * conn.exec_driver_sql("PRAGMA page_size").scalar())
        else:
            total = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    store.close()
    return {"measurements": count, "database_bytes": total, "json_chars": json_chars, "sample_bytes": blob}


def worker_write(args) -> dict:
    import numpy as np
    from harness.measurement import Measurement, Memory
    from harness.store import Store

    store = Store(args.url)
    run_id = store.start_run(tag="bench-write")
    rng = np.random.default_rng(3)
    base = (1e6 * rng.lognormal(0.0, 0.1, args.samples)).astype(np.int64)
    stats = _key_stats(base.tolist())
    made = [Measurement(
        device="board-w", model="digits-cnn", variant=f"w{i}", technique="fp32", format="onnx", latency=stats,
        samples_ns=base[rng.permutation(base.size)].tolist(), timings_ms={}, memory=Memory(peak_rss_kb=1),
        accuracy=0.9, accuracy_n=1, host_accuracy=0.9, size_bytes=1, storage_bytes=1, n_params=1, macs=1,
        model_sha256="0" * 64, emulated=False, settings={}, provenance={}, run_id=run_id) for i in range(args.count)]
    times = []
    for m in made:
        t = time.perf_counter()
        store.save(m)
        times.append(time.perf_counter() - t)
    store.close()
    times.sort()
    return {"median_ms": 1e3 * statistics.median(times), "p95_ms": 1e3 * times[int(0.95 * (len(times) - 1))]}


def worker_report(args) -> dict:
    from harness.report import write_report
    from harness.store import Store

    store = Store(args.url)
    t, cpu = time.perf_counter(), time.process_time()
    path = write_report(store, Path(args.out), run_id=args.run)
    took, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"seconds": took, "cpu_seconds": cpu, "html_bytes": path.stat().st_size, "peak_rss_mb": _peak_rss_mb()}


def worker_export(args) -> dict:
    from harness.cli import main as cli

    argv = ["export", args.run, "--store", args.url, "--format", args.format, "--out", args.out]
    t = time.perf_counter()
    if cli(argv + (["--samples"] if args.with_samples else [])) != 0:
        raise SystemExit(f"export failed: {argv}")
    took = time.perf_counter() - t
    return {"seconds": took, "bytes": Path(args.out).stat().st_size, "peak_rss_mb": _peak_rss_mb()}


WORKERS = {"fill": worker_fill, "size": worker_size, "write": worker_write, "report": worker_report,
           "export": worker_export}


# ------------------------------------------------------------------ driver

def baseline_tree(ref: str, into: Path) -> Path:
    """`harness/` as it was at `ref`, extracted into `into` (nothing in the checkout changes)."""
    archive = into / "baseline.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), ref, "harness"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "baseline", filter="data")
    return into / "baseline"


def run_worker(code: Path, name: str, timeout: float = 7200, **options) -> dict:
    argv = [sys.executable, __file__, "--worker", name]
    for key, value in options.items():
        if value is True:
            argv.append(f"--{key.replace('_', '-')}")
        elif value not in (None, False):
            argv += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"worker {name} ({code}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def browser_load_s(page: Path):
    """Seconds from navigation to the load event (every plot drawn) in headless Chromium."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from labci_cdp import Browser, chromium_path
    except ImportError:
        return None
    binary = chromium_path()
    if binary is None:
        return None
    browser = Browser(binary)
    try:
        browser.send("Page.enable")
        browser.send("Page.navigate", url=page.resolve().as_uri())  # a first load warms the browser
        browser.wait_event("Page.loadEventFired")
        browser.send("Page.navigate", url="about:blank")
        browser.wait_event("Page.loadEventFired")
        t = time.perf_counter()
        browser.send("Page.navigate", url=page.resolve().as_uri())
        browser.wait_event("Page.loadEventFired")
        return time.perf_counter() - t
    finally:
        browser.close()


def codec_bytes_per_sample(n: int) -> tuple[float, float]:
    """(binary, JSON) bytes per sample of one n-sample series like the year's."""
    import numpy as np

    sys.path.insert(0, str(REPO))
    from harness import samples

    series = (1e6 * np.random.default_rng(5).lognormal(0.0, 0.08, n)).astype(np.int64)
    return len(samples.encode(series)) / n, len(json.dumps(series.tolist())) / n


def bench_backend(label: str, urls: dict, codes: dict, args, tmp: Path) -> None:
    def say(line):
        print(f"{label:10} {fmt:8} {line}", flush=True)

    for fmt, code in codes.items():
        url = urls[fmt]
        filled = run_worker(code, "fill", url=url, runs=args.runs, boards=args.boards, variants=args.variants,
                            samples=args.samples)
        size = run_worker(code, "size", url=url)
        count = size["measurements"]
        sample_bytes = size["sample_bytes"] if size["sample_bytes"] else size["json_chars"]
        page = tmp / f"report-{label}-{fmt}.html"
        report = run_worker(code, "report", url=url, run=filled["last_run"], out=page)
        load = browser_load_s(page) if not args.no_browser else None
        say(f"write one measurement of {args.samples} samples (the newest night, Store.save): "
            f"median {filled['write_median_ms']:.1f} ms, p95 {filled['write_p95_ms']:.1f} ms; "
            f"{count} measurements in the year (earlier nights copied in {filled['copy_s']:.0f} s)")
        say(f"store {size['database_bytes'] / 1e6:.0f} MB: "
                     f"{size['database_bytes'] / count / 1e3:.1f} kB per measurement, "
                     f"{sample_bytes / (count * args.samples):.2f} bytes per sample (samples' own bytes)")
        say(f"report (newest run, {args.runs}-run trend) {report['seconds']:.2f} s ({report['cpu_seconds']:.2f} s CPU), "
                     f"HTML {report['html_bytes'] / 1e6:.1f} MB, peak RSS {report['peak_rss_mb']:.0f} MB"
                     + (f", Chromium load {load:.2f} s" if load is not None else ""))
        # today's JSON export always holds the samples (and knows no --samples)
        exports = ((("json", {}), ("json", {"with_samples": True}), ("csv", {})) if fmt == "compact"
                   else (("json", {}), ("csv", {})))
        for what, extra in exports:
            out = tmp / f"export-{label}-{fmt}.{what}"
            done = run_worker(code, "export", url=url, run=filled["last_run"], format=what, out=out, **extra)
            with_samples = bool(extra) or (fmt == "today" and what == "json")
            say(f"export newest run {what}{' with samples' if with_samples else ''}: "
                         f"{done['seconds']:.2f} s, {done['bytes'] / 1e6:.1f} MB, peak RSS {done['peak_rss_mb']:.0f} MB")
            out.unlink()
        if fmt == "compact":
            for what in ("csv", "json"):
                out = tmp / f"export-all-{label}.{what}"
                done = run_worker(code, "export", url=url, run="all", format=what, out=out)
                say(f"export every run {what}: {done['seconds']:.1f} s, "
                             f"{done['bytes'] / 1e6:.1f} MB, peak RSS {done['peak_rss_mb']:.0f} MB")
                out.unlink()
        write = run_worker(code, "write", url=url, samples=args.write_samples, count=args.writes)
        say(f"write one measurement of {args.write_samples} samples: "
                     f"median {write['median_ms']:.1f} ms, p95 {write['p95_ms']:.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--format", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=365, help="nightly runs (default 365)")
    ap.add_argument("--boards", type=int, default=10)
    ap.add_argument("--variants", type=int, default=20)
    ap.add_argument("--samples", type=int, default=2000, help="per-inference samples per measurement")
    ap.add_argument("--write-samples", type=int, default=100_000, help="samples of each timed write")
    ap.add_argument("--writes", type=int, default=50, help="timed writes per store")
    ap.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of today's format (the baseline)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--with-samples", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0
    binary, text = codec_bytes_per_sample(20_000)
    print(f"codec      20,000 samples: {binary:.2f} bytes per sample binary, {text:.2f} as JSON text")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp_name:
        tmp = Path(tmp_name)
        codes = {"today": baseline_tree(args.baseline_ref, tmp), "compact": REPO}
        sqlite_urls = {fmt: f"sqlite:///{tmp / f'{fmt}.sqlite'}" for fmt in codes}
        bench_backend("SQLite", sqlite_urls, codes, args, tmp)
        for fmt in codes:
            Path(sqlite_urls[fmt][len("sqlite:///"):]).unlink()
        if args.no_postgres:
            return 0
        sys.path.insert(0, str(REPO / "tests"))
        from labci_postgres import Unavailable, postgres_server

        try:
            with postgres_server() as url:
                import sqlalchemy as sa

                engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
                with engine.connect() as conn:
                    for fmt in codes:
                        conn.exec_driver_sql(f"CREATE DATABASE bench_{fmt}")
                engine.dispose()
                base = url.rsplit("/", 1)[0]
                bench_backend("PostgreSQL", {fmt: f"{base}/bench_{fmt}" for fmt in codes}, codes, args, tmp)
        except Unavailable as exc:
            print(f"PostgreSQL skipped: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
