#!/usr/bin/env python3
"""labgrid kind benchmark: a real labgrid coordinator and exporters on loopback, places on
the real sshd test boards (needs root and labgrid; see tests/labgrid_lab.py).

    sudo HARNESS_LABGRID_PYTHON=/path/to/labgrid-venv/bin/python python benchmarks/bench_labgrid.py [--repeat 3]

Prints:
  1. on a free place, from opening the device: reserve + acquire (the bridge started, the
     reservation allocated, the place acquired), then SSH connect and runner upload, then
     the first measurement (model upload, one inference), median of --repeat fresh devices
  2. the suites' wall time (`pytest suites/ --device pool --variants digits-mlp/*`) with
     `-n 1` (one worker: one place) and `-n 2` (two workers: two places of the same tag)
Figures are from one run on the machine it runs on; nothing here is asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import variant_build  # noqa: E402
from harness.devices import open_device  # noqa: E402
from harness.inventory import Inventory  # noqa: E402
from labgrid_lab import LabgridLab, labgrid_python  # noqa: E402
from sshboards import Lab, skip_reason  # noqa: E402

TINY = {"warmup": 0, "min_duration_s": 0.0, "min_iterations": 1, "max_iterations": 1}


def first_measurement(devices: Path, model: Path) -> tuple[float, float, float]:
    """(reserve + acquire, + SSH connect and runner upload, + model upload and one measurement)."""
    t0 = time.perf_counter()
    device = open_device(Inventory(devices).get("pool"))
    device.connect()
    try:
        connected = time.perf_counter() - t0
        device.run({"model": device.deploy(model), **TINY})
        return device.acquire_s, connected, time.perf_counter() - t0
    finally:
        device.close()


def suite_wall(lab: LabgridLab, devices: Path, workers: int, tmp: Path) -> float:
    argv = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "--devices-dir", str(devices), "--device", "pool",
            "--variants", "digits-mlp/*", "--min-duration", "0.2", "--warmup", "2", "--report", "",
            "--store", f"sqlite:///{tmp / f'n{workers}.sqlite'}", "-p", "no:cacheprovider", "-q", "-n", str(workers)]
    t = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env={**lab.env(), "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=1800)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"suite -n {workers} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reason = skip_reason()
    python, why = labgrid_python()
    if reason or why:
        raise SystemExit(reason or why)
    ssh_lab = Lab()
    lab = None
    try:
        lab = LabgridLab(python, ssh_lab)
        boards = [ssh_lab.add_board(f"bench{i}") for i in range(2)]
        for i, board in enumerate(boards):
            lab.add_place(f"bench-{i}", board, {"board": "bench"})
        tmp = Path(tempfile.mkdtemp(prefix="bench-labgrid-"))
        devices = tmp / "devices"
        lab.device_yaml("pool", boards[0], devices_dir=devices, tags={"board": "bench"})
        os.environ.update({k: lab.env()[k] for k in ("XDG_CACHE_HOME", "HARNESS_LABGRID_PYTHON")})
        manifest = next(m for m in variant_build.load_manifests(ROOT / "models") if m.name == "digits-mlp")
        model = ROOT / "models" / manifest.base
        acquire, connect, first = zip(*[first_measurement(devices, model) for _ in range(args.repeat)])
        print(f"free place (median of {args.repeat}): reserve + acquire {statistics.median(acquire):.2f} s, "
              f"+ SSH connect and runner upload {statistics.median(connect):.2f} s, first measurement "
              f"at {statistics.median(first):.2f} s")
        one = suite_wall(lab, devices, 1, tmp)
        two = suite_wall(lab, devices, 2, tmp)
        print(f"suites, digits-mlp/*: one place (-n 1) {one:.1f} s, two places (-n 2) {two:.1f} s, "
              f"ratio {one / two:.2f}x on {os.cpu_count()} CPUs")
    finally:
        if lab is not None:
            lab.close()
        ssh_lab.close()


if __name__ == "__main__":
    main()
