"""Size and build time of one run's HTML report (issue 16), this checkout against a baseline.

    python benchmarks/bench_report_page.py                          # synthetic run, against 8383a6e
    python benchmarks/bench_report_page.py --store sqlite:///reports/harness.sqlite --run latest
    python benchmarks/bench_report_page.py --variants 16 --devices 2 --history 10 --baseline-ref HEAD~3

The synthetic run: --devices boards (the last one emulated, an MCU with flash and RAM) x
--variants variants of --samples per-inference samples in 3 rounds, after --history earlier
runs (the trend). The baseline's code is extracted from git (`git archive`) into a temporary
directory and builds the same report from the same store in its own process. Printed: page
bytes, of which plotly.js, and the build's CPU seconds (median of --repeat, after one warm-up;
process time, so a busy shared machine moves it less than wall time). Figures only: nothing
here asserts.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from repo_root import ROOT as REPO
BASELINE_REF = "8383a6e"   # the last commit before issue 16's report: full plotly.js inline


def worker(args) -> dict:
    """Build the report `--repeat` times in this process (with whichever harness is on the path)."""
    from harness.report import write_report
    from harness.store import Store

    store = Store(args.store)
    run_id = store.resolve_run(args.run)
    out = Path(args.out)
    write_report(store, out, run_id=run_id)   # warm-up: imports, plotly's validators, caches
    times = []
    for _ in range(args.repeat):
        start = time.process_time()
        write_report(store, out, run_id=run_id)
        times.append(time.process_time() - start)
    text = out.read_text()
    plotly = 0
    for marker_start, marker_end in (("<script id='plotly-gz' type='application/octet-stream'>", "</script>"),
                                     ("<script type='text/javascript'>/**", "</script>")):
        at = text.find(marker_start)
        if at >= 0:
            plotly = text.index(marker_end, at) - at
            break
    return {"bytes": len(text.encode()), "plotly_bytes": plotly, "cpu_s": statistics.median(times)}


def fill(url: str, devices: int, variants: int, samples: int, history: int) -> None:
    import numpy as np

    sys.path.insert(0, str(REPO / "tests"))
    from fake_measurements import measured_in_rounds
    from harness.measurement import Memory
    from harness.store import Store

    store = Store(url)
    rng = np.random.default_rng(16)
    for night in range(history + 1):
        run = store.start_run(tag=f"nightly-{night}")
        for d in range(devices):
            emulated = d == devices - 1 and devices > 1
            device = f"qemu-m{d}" if emulated else f"board-{d}"
            for v in range(variants):
                base = (40.0 if emulated else 0.01) * (1 + v % 7) * (1 + 0.01 * night)
                m = measured_in_rounds([base * rng.lognormal(0, 0.02) for _ in range(3)], variant=f"v{v:02d}",
                                       device=device, n=samples // 3, seed=night * 1000 + d * 100 + v,
                                       campaign=f"{run}:{device}", run_id=run,
                                       accuracy=0.975 - 0.002 * (v % 5), sha=f"{v:064x}")
                m.technique = "fp32" if v == 0 else f"t{v % 6}"
                m.storage_bytes, m.size_bytes, m.emulated = 12_000 // (1 + v % 4), 12_000, emulated
                m.memory = (Memory(flash_bytes=80_000, ram_bytes=24_000) if emulated
                            else Memory(peak_rss_kb=70_000, load_growth_kb=3_000 + 100 * v))
                store.save(m)
        store.finish_run(run)


def run_with(code_root: Path, args, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--store", args.store, "--run", args.run, "--out", str(out),
           "--repeat", str(args.repeat)]
    env = {"PYTHONPATH": str(code_root), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, cwd=code_root)
    if done.returncode != 0:
        raise SystemExit(f"worker with {code_root} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", help="a store URL (default: a synthetic run in a temporary SQLite file)")
    p.add_argument("--run", default="latest")
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--variants", type=int, default=14)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--history", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the code to compare with ('' for none)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        tmp = Path(tmp)
        if not args.store:
            args.store = f"sqlite:///{tmp / 'h.sqlite'}"
            fill(args.store, args.devices, args.variants, args.samples, args.history)
            print(f"synthetic run: {args.devices} device(s) x {args.variants} variants x {args.samples} samples, "
                  f"{args.history} earlier runs")
        rows = [("this checkout", run_with(REPO, args, tmp / "now.html"))]
        if args.baseline_ref:
            base = tmp / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline_ref, "harness"],
                                     capture_output=True, check=True).stdout
            (tmp / "base.tar").write_bytes(archive)
            with tarfile.open(tmp / "base.tar") as tar:
                tar.extractall(base)
            rows.insert(0, (f"baseline {args.baseline_ref}", run_with(base, args, tmp / "base.html")))
        print(f"{'code':<24} {'page MB':>8} {'plotly.js MB':>13} {'rest MB':>8} {'build CPU s':>12}")
        for name, r in rows:
            print(f"{name:<24} {r['bytes'] / 1e6:>8.2f} {r['plotly_bytes'] / 1e6:>13.2f} "
                  f"{(r['bytes'] - r['plotly_bytes']) / 1e6:>8.2f} {r['cpu_s']:>12.2f}")


if __name__ == "__main__":
    main()
