#!/usr/bin/env python3
"""SSH kind benchmark on real sshd test boards (needs root; see tests/sshboards.py).

    sudo python benchmarks/bench_ssh.py [--repeat 10]

Prints:
  1. deploy throughput of a ~20 MB model to a test board (and the cached second deploy)
  2. the per-measurement overhead over SSH against local: wall time of one device.run()
     of a tiny model (1 inference, no warmup), median of --repeat, and their ratio
  3. a CPU-throttled board (25 % of one CPU, cgroup cpu quota) against an unthrottled one:
     mean / p50 / p99 latency and throughput of the same model (both pinned to CPU 0)
Figures are from one run on the machine it runs on; nothing here is asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness.devices.local import LocalDevice  # noqa: E402
from harness.devices.ssh import SshDevice  # noqa: E402
from harness.inventory import parse_device  # noqa: E402
from sshboards import Lab, skip_reason  # noqa: E402
from onnx_models import matmul_chain  # noqa: E402

TINY = {"warmup": 0, "min_duration_s": 0.0, "min_iterations": 1, "max_iterations": 1}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def deploy_throughput(lab, board, models):
    big = matmul_chain(models / "big-20mb.onnx", 2236, seed=int(time.time()))  # new content: a real upload
    size = big.stat().st_size
    with SshDevice(lab.spec(board)) as device:
        first, _ = timed(lambda: device.deploy(big))
        sent = device.link.bytes_uploaded
    with SshDevice(lab.spec(board)) as device:
        second, _ = timed(lambda: device.deploy(big))
        cached = device.link.bytes_uploaded
    print(f"1. deploy of a {size / 1e6:.1f} MB model: {first:.2f} s, {sent / first / 1e6:.1f} MB/s "
          f"({sent} bytes sent); second deploy: {second * 1000:.1f} ms, {cached} bytes sent")


def overhead(lab, board, models, repeat):
    tiny = matmul_chain(models / "tiny.onnx", 16)
    walls = {}
    local = LocalDevice(parse_device({"kind": "local"}, "<bench>", "local"))
    with local:
        spec = {"model": local.deploy(tiny), **TINY}
        local.run(spec)  # warm the page cache
        walls["local"] = [timed(lambda: local.run(spec))[0] for _ in range(repeat)]
    with SshDevice(lab.spec(board)) as device:
        spec = {"model": device.deploy(tiny), **TINY}
        device.run(spec)
        walls["ssh"] = [timed(lambda: device.run(spec))[0] for _ in range(repeat)]
    lo, ss = statistics.median(walls["local"]), statistics.median(walls["ssh"])
    print(f"2. one measurement (1 inference, runner start + model load + JSON back), median of {repeat}: "
          f"local {lo * 1000:.0f} ms, ssh {ss * 1000:.0f} ms; ssh/local = {ss / lo:.2f}x "
          f"(+{(ss - lo) * 1000:.0f} ms per measurement)")


def throttled(lab, fast, slow, models):
    model = matmul_chain(models / "mid.onnx", 1024)
    spec_extra = {"warmup": 20, "min_duration_s": 3.0, "min_iterations": 200}
    rows = {}
    for board in (fast, slow):
        with SshDevice(lab.spec(board)) as device:
            raw = device.run({"model": device.deploy(model), **spec_extra})
        lat = sorted(raw["latencies_ns"])
        n = len(lat)
        rows[board.name] = {"mean": statistics.fmean(lat) / 1e6, "p50": lat[n // 2] / 1e6,
                            "p99": lat[min(n - 1, int(n * 0.99))] / 1e6,
                            "ips": n / (raw["loop"]["wall_ns"] / 1e9)}
    f, s = rows[fast.name], rows[slow.name]
    print("3. throttled (25 % CPU quota) vs unthrottled board, 1024x1024 MatMul, 3 s timed loop, "
          f"both boards pinned to CPU 0; host load average {os.getloadavg()[0]:.1f}:")
    for name, r in (("unthrottled", f), ("throttled", s)):
        print(f"   {name:12} mean {r['mean']:.3f} ms  p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  "
              f"{r['ips']:.0f} inf/s")
    print(f"   throttled/unthrottled: mean {s['mean'] / f['mean']:.2f}x, p50 {s['p50'] / f['p50']:.2f}x, "
          f"p99 {s['p99'] / f['p99']:.2f}x, throughput {s['ips'] / f['ips']:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        sys.exit(f"bench_ssh: {reason}")
    lab = Lab()
    try:
        fast = lab.add_board("fast", cpu=0)
        slow = lab.add_board("slow", cpu=0, cpu_quota_pct=25)
        with tempfile.TemporaryDirectory() as tmp:
            models = Path(tmp)
            deploy_throughput(lab, fast, models)
            overhead(lab, fast, models, args.repeat)
            throttled(lab, fast, slow, models)
    finally:
        lab.close()


if __name__ == "__main__":
    main()
