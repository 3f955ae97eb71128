#!/usr/bin/env python3
"""GPU timing, memory, state and energy through the real runner, on CUDA and on the CPU.

    python benchmarks/gpu_check.py [--seconds 2] [--idle 2] [--budget-s 420] [--out FILE]

Exports the demo models (models/digits_{cnn,mlp}.onnx) to torch.export programs (.pt2,
models/make_zoo.py --pt2) and a MatMul chain big enough to load a GPU, then runs
harness/ondevice/runner.py in a fresh process for each, as a board runs it:

  - CUDA, sync on, io device   the timed region ends when the GPU has finished (the rule)
  - CUDA, sync off, io device  what an unsynchronised timer reports (launch time only)
  - CUDA, sync on, io host     inputs copied in and outputs out every iteration
  - CPU                        the same program on the CPU
  - onnxruntime CPU            the committed .onnx (and CUDA where onnxruntime-gpu exists)

With an NVML meter (harness/power/nvml.py) around every CUDA run: energy per inference
from the energy counter differenced at the window edges (sampled power where the counter
is missing), idle-subtracted against an idle read taken first. Beside it the runner's own
NVML snapshots at the window edges (clocks, throttle reasons, temperature, the counter),
machine.py's window and validity.py's verdict on it, and GPU memory per phase.

Needs torch (CUDA build for the GPU rows) and, for GPU state and energy, nvidia-ml-py.
Without a GPU it runs the CPU rows and says why the others are missing. Prints one JSON
document (and writes it to --out); never raises for one failed row: the row says why.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from harness import machine  # noqa: E402
from harness.validity import Thresholds, gpu_reasons, window_reasons  # noqa: E402

RUNNER = ROOT / "harness" / "ondevice" / "runner.py"


def _make_zoo():
    spec = importlib.util.spec_from_file_location("make_zoo", ROOT / "models" / "make_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export_models(folder: Path, size: int, layers: int) -> dict:
    """{name: (.pt2 path, matching .onnx or None)}."""
    import torch

    make_zoo = _make_zoo()
    out = {}
    for kind in ("cnn", "mlp"):
        onnx_path = ROOT / "models" / f"digits_{kind}.onnx"
        out[f"digits_{kind}"] = (make_zoo.export_pt2(kind, onnx_path, folder / f"digits_{kind}.pt2"), onnx_path)
    torch.manual_seed(0)
    chain = []
    for _ in range(layers):
        chain += [torch.nn.Linear(size, size), torch.nn.ReLU()]
    net = torch.nn.Sequential(*chain).eval()
    program = torch.export.export(net, (torch.zeros(size, size),))
    path = folder / f"matmul_chain_{size}x{layers}.pt2"
    torch.export.save(program, str(path))
    out[path.stem] = (path, None)
    return out


def run_runner(spec: dict, folder: Path, timeout_s: float) -> dict:
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec))
    try:
        done = subprocess.run([sys.executable, str(RUNNER), str(spec_path)], capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": {"type": "Timeout", "message": f"runner did not finish in {timeout_s:.0f} s"}}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": {"type": "NoAnswer", "message": done.stderr[-1500:]}}


def latency_summary(doc: dict) -> dict:
    lat = np.asarray(doc["latencies_ns"], dtype=float) / 1e3
    return {"n": int(lat.size), "p50_us": float(np.percentile(lat, 50)), "p90_us": float(np.percentile(lat, 90)),
            "p99_us": float(np.percentile(lat, 99)), "mean_us": float(lat.mean()), "min_us": float(lat.min())}


def describe(doc: dict) -> dict:
    """What a row reports from one runner document."""
    if not doc.get("ok"):
        return {"error": doc.get("error")}
    m = doc.get("machine") or {}
    window = machine.window_state(m.get("before"), m.get("after"))
    thresholds = Thresholds()
    memory = doc.get("memory") or {}
    row = {
        "runtime": doc.get("runtime"),
        "settings": {k: v for k, v in (doc.get("settings") or {}).items()
                     if k in ("device", "io", "sync", "gpu_index", "threads", "warmup", "min_duration_s")},
        "latency": latency_summary(doc),
        "timings_ms": doc.get("timings_ms"),
        "memory": {"peak_rss_kb": memory.get("peak_rss_kb"),
                   "gpu_peak_allocated_bytes": memory.get("gpu_peak_allocated_bytes"),
                   "gpu_process_peak_bytes": memory.get("gpu_process_peak_bytes"),
                   "gpu_per_phase": memory.get("gpu")},
        "window": {"wall_s": window.get("wall_s"), "gpu": window.get("gpu"),
                   "freq_change_max": window.get("freq_change_max"), "other_cores": window.get("other_cores")},
        "invalid_reasons": window_reasons([window], thresholds) + gpu_reasons([window], thresholds),
    }
    if m.get("before", {}).get("gpu") is not None:
        # the raw NVML snapshots, to replace tests/data/nvml_recorded.json's typed values
        row["nvml_raw"] = {"before": m["before"]["gpu"], "after": m["after"]["gpu"]}
    return row


class Energy:
    """The NVML meter around a run, with one idle read taken first."""

    def __init__(self, index: int, idle_s: float, notes: list):
        self.meter, self.idle = None, None
        try:
            from harness.power.nvml import NvmlMeter

            self.meter = NvmlMeter({"index": index, "mode": "auto", "interval_ms": 20})
            self.meter.start()
            time.sleep(idle_s)
            self.idle = self.meter.stop()
        except Exception as exc:  # no pynvml, no driver: the rows go on without energy
            notes.append(f"no NVML energy: {type(exc).__name__}: {exc}")
            self.meter = None

    def around(self, call):
        if self.meter is None:
            return call(), None
        self.meter.start()
        try:
            doc = call()
        finally:
            trace = self.meter.stop()
        if not doc.get("ok"):
            return doc, None
        from harness.power.energy import summarize

        w = doc["window"]
        out = summarize(trace, w["start_unix_s"], w["end_unix_s"], doc["loop"]["iterations"], self.idle)
        keep = ("method", "window_s", "energy_j", "energy_per_inference_j", "net_energy_j",
                "net_energy_per_inference_j", "avg_power_w", "idle_power_w", "n_samples", "coverage",
                "uncertainty", "notes", "extra")
        return doc, {k: out.get(k) for k in keep}

    def close(self):
        if self.meter is not None:
            self.meter.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="min_duration_s of each timed window")
    ap.add_argument("--idle", type=float, default=2.0, help="idle read before the runs (s)")
    ap.add_argument("--size", type=int, default=2048, help="MatMul chain: square size")
    ap.add_argument("--layers", type=int, default=8, help="MatMul chain: Linear+ReLU layers")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop starting rows after this long")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    started = time.monotonic()
    notes: list = []
    result: dict = {"python": sys.version.split()[0], "notes": notes, "rows": []}
    try:
        import torch
    except ImportError as exc:
        notes.append(f"torch is not installed ({exc}): nothing to run (pip install -e '.[torch]')")
        print(json.dumps(result, indent=2))
        return 1
    cuda = torch.cuda.is_available()
    result["torch"] = {"version": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": cuda}
    if cuda:
        result["torch"]["device_name"] = torch.cuda.get_device_name(0)
    else:
        notes.append(f"no GPU: torch {torch.__version__} sees no CUDA device (CUDA build {torch.version.cuda}); "
                     "CPU rows only")
    try:
        import onnxruntime as ort

        result["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers()}
    except ImportError:
        ort = None
    snap = subprocess.run([sys.executable, str(RUNNER), "--machine-gpu", "0"], capture_output=True, text=True,
                          timeout=120)
    try:
        gpu_now = json.loads(snap.stdout.strip().splitlines()[-1]).get("gpu")
    except (ValueError, IndexError):
        gpu_now = {"missing": snap.stderr[-500:]}
    result["gpu_state_before"] = gpu_now
    result["stability_hints"] = machine.gpu_hints(gpu_now) if cuda else []

    common = {"warmup": 50, "min_duration_s": args.seconds, "min_iterations": 200, "max_iterations": 2_000_000,
              "threads": 1, "gpu_index": 0}
    configs = []
    if cuda:
        configs += [("cuda sync io=device", {"device": "cuda:0", "sync": True, "io": "device"}),
                    ("cuda nosync io=device", {"device": "cuda:0", "sync": False, "io": "device"}),
                    ("cuda sync io=host", {"device": "cuda:0", "sync": True, "io": "host"})]
    configs.append(("cpu", {"device": "cpu"}))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.monotonic()
        models = export_models(folder, args.size, args.layers)
        result["export_s"] = time.monotonic() - t
        energy = Energy(0, args.idle, notes) if cuda else None
        try:
            for name, (pt2, onnx_path) in models.items():
                rows = [(label, dict(common, model=str(pt2), runtime="torch", **extra)) for label, extra in configs]
                if onnx_path is not None and ort is not None:
                    rows.append(("onnxruntime cpu", dict(common, model=str(onnx_path), runtime="onnxruntime",
                                                         providers=["CPUExecutionProvider"])))
                    if "CUDAExecutionProvider" in ort.get_available_providers():
                        rows.append(("onnxruntime cuda io=device",
                                     dict(common, model=str(onnx_path), runtime="onnxruntime", io="device",
                                          sync=True, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])))
                if name.startswith("matmul"):  # seconds per inference on one CPU thread: a few suffice
                    rows = [(label, dict(spec, warmup=1, min_iterations=3, min_duration_s=0.0)
                             if label == "cpu" else spec) for label, spec in rows]
                for label, spec in rows:
                    if time.monotonic() - started > args.budget_s:
                        notes.append(f"time budget {args.budget_s:.0f} s spent: {name} {label} and later rows skipped")
                        break
                    on_gpu = spec.get("device", "").startswith("cuda") or "CUDAExecutionProvider" in spec.get(
                        "providers", [])
                    t = time.monotonic()
                    call = lambda spec=spec: run_runner(spec, folder, timeout_s=180)  # noqa: E731
                    doc, joules = energy.around(call) if (on_gpu and energy) else (call(), None)
                    row = {"model": name, "config": label, "wall_s": round(time.monotonic() - t, 2), **describe(doc)}
                    if joules is not None:
                        row["energy"] = joules
                    result["rows"].append(row)
        finally:
            if energy is not None:
                energy.close()
    result["sync_effect"] = sync_effect(result["rows"])
    result["total_s"] = round(time.monotonic() - started, 1)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


def sync_effect(rows: list) -> dict:
    """p50 with the device sync on and off, per model: how much an unsynchronised timer hides."""
    out = {}
    for row in rows:
        if "latency" not in row or not row["config"].startswith("cuda") or "io=device" not in row["config"]:
            continue
        key = "sync_p50_us" if row["config"].startswith("cuda sync") else "nosync_p50_us"
        out.setdefault(row["model"], {})[key] = row["latency"]["p50_us"]
    for figures in out.values():
        if figures.get("nosync_p50_us") and figures.get("sync_p50_us"):
            figures["ratio"] = figures["sync_p50_us"] / figures["nosync_p50_us"]
    return out


if __name__ == "__main__":
    sys.exit(main())
