#!/usr/bin/env python3
"""Local vs the emulated aarch64 SSH board (tests/arm64board.py; needs root and the root
filesystem of .ci/install.d/arm64.sh).

    sudo python benchmarks/bench_arm64.py [--min-duration 1.0]

Prints, for the zoo's digits models, the p50 latency per inference on this machine
(`kind: local`) and on the arm64 board (QEMU user mode, QEMU_CPU=cortex-a76: EMULATED, the
wall clock of an emulated CPU, nothing like a real board's speed), the board's ratio to
local, and both boards' top-1 on the digits evaluation set against the host's; then the
start-up cost of one measurement (runner start, imports, model load, 1 inference) on both.
A markdown table, as docs/ssh.md shows it. Figures are from one run on the machine it runs
on; nothing here is asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from repo_root import ROOT
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import arm64board  # noqa: E402
from harness import variant_build  # noqa: E402
from harness.devices.local import LocalDevice  # noqa: E402
from harness.devices.ssh import SshDevice  # noqa: E402
from harness.inventory import parse_device  # noqa: E402
from sshboards import Lab  # noqa: E402

MODELS = [("digits-mlp fp32 (onnxruntime)", "digits_mlp", "digits_mlp.onnx"),
          ("digits-mlp int8 (LiteRT / tflite-runtime)", "digits_mlp", "digits_mlp_int8.tflite"),
          ("digits-cnn fp32 (onnxruntime)", "digits_cnn", "digits_cnn.onnx"),
          ("digits-cnn int8 (LiteRT / tflite-runtime)", "digits_cnn", "digits_cnn_int8.tflite")]
TINY = {"warmup": 0, "min_duration_s": 0.0, "min_iterations": 1, "max_iterations": 1}


def p50_ms(raw) -> float:
    return statistics.median(raw["latencies_ns"]) / 1e6


def top1(raw):
    acc = raw.get("accuracy") or {}
    return (acc.get("top1"), acc.get("n"))


def measure(device, manifest, model: Path, settings: dict) -> dict:
    return device.run({"model": device.deploy(model), "dataset": device.deploy(variant_build.dataset_file(manifest)),
                       "inputs": variant_build.input_spec(manifest), **settings})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-duration", type=float, default=1.0, help="timed loop per model (s)")
    parser.add_argument("--repeat", type=int, default=3, help="start-up measurements per device")
    args = parser.parse_args()
    reason = arm64board.skip_reason()
    if reason:
        sys.exit(f"bench_arm64: {reason}")
    settings = {"warmup": 5, "min_duration_s": args.min_duration, "min_iterations": 20}
    lab = Lab()
    binfmt = arm64board.Binfmt(f"edge-harness-arm64-bench-{os.getpid()}")
    try:
        t = time.perf_counter()
        boards = {"current": arm64board.add_board(lab, "arm64"),
                  "old-image": arm64board.add_board(lab, "arm64old", env="old-image")}
        print(f"two arm64 boards up (emulated sshd) in {time.perf_counter() - t:.1f} s; "
              f"host load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
        local = LocalDevice(parse_device({"kind": "local"}, "<bench>", "local"))
        rows, startup = [], {}
        with local, SshDevice(lab.spec(boards["current"], top=arm64board.spec_top())) as arm, \
                SshDevice(lab.spec(boards["old-image"], top=arm64board.spec_top())) as old:
            for label, manifest_name, file in MODELS:
                manifest = variant_build.load_manifest(ROOT / "models" / f"{manifest_name}.yaml")
                model = ROOT / "models" / file
                lo = measure(local, manifest, model, settings)
                ar = measure(arm, manifest, model, settings)
                ol = measure(old, manifest, model, settings) if file.endswith(".tflite") else None
                rows.append((label, lo, ar, ol))
            for name, device in (("local", local), ("arm64 (emulated)", arm)):
                spec = {"model": device.deploy(ROOT / "models" / "digits_mlp.onnx"), **TINY}
                walls = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    device.run(spec)
                    walls.append(time.perf_counter() - t)
                startup[name] = statistics.median(walls)
    finally:
        binfmt.close()
        lab.close()

    print()
    print("| model | local p50 | arm64 p50 (emulated) | arm64 / local | arm64 old image p50 (emulated) "
          "| top-1 local / arm64 / old image |")
    print("|---|---|---|---|---|---|")
    for label, lo, ar, ol in rows:
        accs = [top1(r) for r in (lo, ar, ol) if r is not None]
        acc = " / ".join(f"{round(a * n)}/{n}" if a is not None else "-" for a, n in accs)
        print(f"| {label} | {p50_ms(lo) * 1000:.1f} us | {p50_ms(ar) * 1000:.1f} us | "
              f"{p50_ms(ar) / p50_ms(lo):.0f}x | {f'{p50_ms(ol) * 1000:.1f} us' if ol else '-'} | {acc} |")
    lo, ar = startup["local"], startup["arm64 (emulated)"]
    print(f"\none measurement of digits-mlp fp32 (runner start, numpy + onnxruntime import, load, 1 "
          f"inference, JSON back), median of {args.repeat}: local {lo:.2f} s, arm64 (emulated) {ar:.2f} s "
          f"= {ar / lo:.0f}x")


if __name__ == "__main__":
    main()
