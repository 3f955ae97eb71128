"""Benchmarks of the microcontroller path (issue 4), on the emulated Cortex-M3 board.

    python benchmarks/bench_mcu.py                 # every zoo int8 model
    python benchmarks/bench_mcu.py digits_cnn_int8

For each full-int8 model of the zoo, the reference firmware is built and run in QEMU
(`-M mps2-an385 -icount shift=0`) and the script prints:

instructions  guest instructions per inference: under -icount shift=0 every instruction
              advances guest time by exactly 1 ns, so the DUT's `m-lap-us` difference of an
              `infer N 0` window x 1000 / N is the instruction count (+-1000/N from the
              microsecond timestamps). Deterministic: the same on every host. A real
              Cortex-M3 needs more cycles than instructions (loads, multiplies, branches).
flash / RAM   from the ELF (arm-none-eabi-size): flash = text + rodata + the .data image,
              consts = the model's constant data (weights, biases, multipliers, shifts,
              softmax table), part of rodata;
              static RAM = data + bss (the arena is in bss), plus the stack high-water mark
              the firmware measures by painting its stack at reset (`mem%`).
protocol      host-side cost of one `infer N 0` window outside the inferences: host wall
              time of windows of N = 1 and N = 1 + k inferences (k: ~20 ms of guest time), fitted as a + b*N; the
              intercept a is the fixed cost of the command, its 8 reply lines and their
              parsing (QEMU serial over TCP, so it includes the emulator's latency). Also
              the round trip of `name%` and of `db load` of one 64-byte input (3 chunks).
per-op       the firmware's `opprof 100` (harness/mcu/profile.py): each operator's share of
              the inference, its time in guest microseconds (= thousands of instructions), the
              coverage (operators' sum / whole inference) and the profiler's overhead (a
              profiled inference vs a plain one); and `peak 1000`, conv's int8 MAC loop, as
              guest MAC/s (emulated: instructions, not a real chip's cycles).
Needs qemu-system-arm and gcc-arm-none-eabi + libnewlib-arm-none-eabi (.ci/install.d/mcu.sh).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT as REPO
sys.path.insert(0, str(REPO))

from harness.mcu import build as fwbuild  # noqa: E402
from harness.mcu import profile as mcu_profile  # noqa: E402
from harness.mcu import qemu  # noqa: E402
from harness.mcu.dut import DutClient  # noqa: E402
from harness.mcu.export import export  # noqa: E402

N_TIMED = 1000      # inferences in the instruction-count window
REPEATS = 25        # protocol measurements are medians of this many
N_PROFILED = 100    # inferences per operator in the per-op profile


def host_ms(call) -> float:
    t = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - t) / 1e6


def bench(model: Path, cache: Path) -> dict:
    exported = export(model)
    firmware = fwbuild.build(exported, cache)
    board = qemu.Qemu(firmware.elf)
    try:
        board.start()
        port = board.connect()
        dut = DutClient(port, timeout_s=30)
        dut.wait_boot()
        data = bytes((i * 37) & 0xFF for i in range(exported.input["bytes"]))
        dut.load(data)
        first = dut.infer(1, 0)
        window = dut.infer(N_TIMED, 0)
        stack = int(next(x for x in dut.command("mem") if x.startswith("m-stack-used-")).rsplit("-", 1)[1])
        profile = mcu_profile.profile(dut, mcu_profile.layers(model), runs=N_PROFILED,
                                      us_per_inference=window.elapsed_us / N_TIMED, emulated="guest-time")
        peak = mcu_profile.peak(dut, emulated="guest-time")
        # enough extra inferences for ~20 ms of guest time, so the slope is not noise
        k = min(max(int(20e6 * N_TIMED / max(window.elapsed_us * 1000, 1)), 50), 5000)
        one = [host_ms(lambda: dut.infer(1, 0)) for _ in range(REPEATS)]
        many = [host_ms(lambda: dut.infer(1 + k, 0)) for _ in range(REPEATS)]
        name = [host_ms(dut.name) for _ in range(REPEATS)]
        load = [host_ms(lambda: dut.load(data)) for _ in range(REPEATS)]
        port.close()
    finally:
        board.stop()
    a1, aK = statistics.median(one), statistics.median(many)
    slope = (aK - a1) / k
    sizes = firmware.sizes
    return {
        "model": model.name, "ops": len(exported.ops),
        "instructions": window.elapsed_us * 1000 / N_TIMED,
        "first_instructions": first.elapsed_us * 1000,
        "flash": sizes["flash_bytes"], "text": sizes["text"], "rodata": sizes["rodata"],
        "consts": exported.const_bytes, "ram": sizes["ram_static_bytes"] + stack,
        "bss": sizes["bss"], "data": sizes["data"], "arena": exported.arena_bytes, "stack": stack,
        "window_overhead_ms": a1 - slope, "window_overhead_min_ms": min(one) - slope,
        "host_ms_per_inference": slope,
        # guest time / host time over the long window: why serial.clock_check is off in QEMU
        "guest_per_host": window.elapsed_us / 1e6 / window.host_s,
        "name_ms": statistics.median(name), "name_min_ms": min(name),
        "load_ms": statistics.median(load), "load_min_ms": min(load),
        "profile": profile, "peak": peak,
    }


def main(argv: list[str]) -> int:
    missing = fwbuild.toolchain_missing() or qemu.qemu_missing()
    if missing:
        print(f"bench_mcu: cannot run: {missing}")
        return 2
    models = sorted((REPO / "models").glob("*_int8.tflite"))
    if argv:
        models = [m for m in models if m.stem in argv]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mcu-") as cache:
        for model in models:
            rows.append(bench(model, Path(cache)))
    print("Emulated Cortex-M3 (QEMU mps2-an385, -icount shift=0), reference int8 firmware")
    head = ("model", "instr/inf", "first inf", "flash B", "text", "rodata", "data", "consts",
            "RAM B", "bss", "stack", "arena")
    print(("{:24}" + " {:>10}" * (len(head) - 1)).format(*head))
    for r in rows:
        print(("{:24}" + " {:>10,.0f}" * 2 + " {:>10,}" * 9).format(
            r["model"], r["instructions"], r["first_instructions"], r["flash"], r["text"], r["rodata"],
            r["data"], r["consts"], r["ram"], r["bss"], r["stack"], r["arena"]))
    print()
    print(f"Host-side protocol cost, median (min) of {REPEATS}; QEMU serial over TCP:")
    print(f"{'model':24} {'per infer window':>20} {'name% round trip':>20} {'db load 64 B':>20}")
    for r in rows:
        print(f"{r['model']:24} {r['window_overhead_ms']:8.2f} ({r['window_overhead_min_ms']:.2f}) ms "
              f"{r['name_ms']:8.2f} ({r['name_min_ms']:.2f}) ms {r['load_ms']:8.2f} ({r['load_min_ms']:.2f}) ms")
    print()
    print(f"Per-operator profile (`opprof {N_PROFILED}`), guest microseconds per inference, and the kernel-loop peak:")
    for r in rows:
        p, pk = r["profile"], r["peak"]
        print(f"{r['model']}: whole inference {p['total_us']:.2f} us, operators sum to {p['coverage']:.2%} of it, "
              f"profiler overhead {p['overhead']:+.3%}; peak {pk['macs_per_s'] / 1e6:.1f} M MAC/s (guest time)")
        for k, op in enumerate(p["ops"]):
            print(f"  {k:2} {op['op_type']:18} {op['shapes']:22} {op['time_us']:9.2f} us {op['time_us'] / p['total_us']:7.1%}")
        by_type: dict = {}
        for op in p["ops"]:
            by_type[op["op_type"]] = by_type.get(op["op_type"], 0.0) + op["time_us"]
        top = sorted(by_type.items(), key=lambda kv: -kv[1])[:3]
        print("  top op types: " + ", ".join(f"{t} {v / p['total_us']:.1%}" for t, v in top))
    print()
    print("Guest time / host time over the 1000-inference window (-icount shift=0 is not real time,")
    print("so the DUT-vs-host clock check, serial.clock_check, is off for emulated boards):")
    for r in rows:
        print(f"{r['model']:24} {r['guest_per_host']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
