"""The device's peak, measured: the roofs a per-operator profile is held against.

A small calibration through the same runtime, on the device, with the device's settings
(threads, execution providers): compute from a large fp32 GEMM (MatMul) and an int8 GEMM
(MatMulInteger), both built here as tiny ONNX models; memory bandwidth from a streaming pass
(Y = X + 1 over a tensor far larger than any cache: every byte read once, written once).
Each is timed by the ordinary runner (its timed loop, median latency), so the peak is what
that runtime reaches on that board, not a datasheet's figure.

The result is cached per device, runtime, runtime version, threads and providers, as a JSON
file with its provenance (when, which board, which models, the medians it came from), and
re-used until one of those changes. A device YAML may state a datasheet peak beside it
(``peak:``); it is shown next to the measured one, never instead of it.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Callable, Optional

from . import __version__, provenance
from .errors import DeviceError, ModelError

CALIBRATION_VERSION = 1
GEMM_N = 512                       # 512^3 = 134M MACs: milliseconds on a board, well above timer noise
STREAM_ELEMENTS = 8 * 1024 * 1024  # 32 MiB of fp32 read and 32 MiB written: beyond any board's caches
RUN_SETTINGS = {"warmup": 2, "min_duration_s": 0.3, "min_iterations": 5, "max_iterations": 2000, "rounds": 1}


def calibration_models(directory: Path, gemm_n: int = GEMM_N, stream_elements: int = STREAM_ELEMENTS) -> dict:
    """{"gemm_fp32" | "gemm_int8" | "stream": .onnx path}: built once per size (onnx helper)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    n = int(gemm_n)

    def save(name, nodes, inputs, outputs, inits):
        path = directory / f"{name}-{n}-{stream_elements}.onnx"
        if not path.is_file():
            graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
            model.ir_version = 8          # onnxruntime builds on older boards read IR 8
            onnx.checker.check_model(model)
            tmp = path.with_suffix(".tmp")
            onnx.save(model, tmp)
            tmp.replace(path)
        return path

    return {
        "gemm_fp32": save("gemm_fp32", [helper.make_node("MatMul", ["x", "w"], ["y"])],
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
                          [numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "w")]),
        "gemm_int8": save("gemm_int8", [helper.make_node("MatMulInteger", ["x", "w"], ["y"])],
                          [helper.make_tensor_value_info("x", TensorProto.UINT8, [n, n])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
                          [numpy_helper.from_array(rng.randint(-127, 128, (n, n)).astype(np.int8), "w")]),
        "stream": save("stream", [helper.make_node("Add", ["x", "one"], ["y"])],
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [stream_elements])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [stream_elements])],
                       [numpy_helper.from_array(np.ones((1,), np.float32), "one")]),
    }


def measure_peak(run: Callable[[dict], dict], deploy: Callable[[Path], str], settings: dict, directory: Path,
                 gemm_n: int = GEMM_N, stream_elements: int = STREAM_ELEMENTS) -> dict:
    """Run the three calibration models through `run` (a device's run: spec -> runner document)
    and return {"macs_per_s": {"fp32", "int8"}, "bytes_per_s", "calibration": {...}}."""
    models = calibration_models(directory, gemm_n, stream_elements)
    medians, runtime, board = {}, None, None
    for name, path in models.items():
        spec = {"model": deploy(path), "runtime": "onnxruntime",
                "providers": list(settings.get("providers") or ["CPUExecutionProvider"]),
                "threads": int(settings.get("threads", 1)), "inter_threads": int(settings.get("inter_threads", 1)),
                "optimization": "all", **{k: v for k, v in RUN_SETTINGS.items() if k != "rounds"}}
        raw = run(spec)
        if not raw.get("ok"):
            raise DeviceError(f"peak calibration {name}: the runner failed: {raw.get('error')}")
        medians[name] = statistics.median(raw["latencies_ns"]) / 1e9
        runtime, board = raw.get("runtime"), raw.get("host")
    gemm_macs = gemm_n ** 3
    return {
        "macs_per_s": {"fp32": gemm_macs / medians["gemm_fp32"], "int8": gemm_macs / medians["gemm_int8"]},
        "bytes_per_s": 2 * 4 * stream_elements / medians["stream"],
        "calibration": {"version": CALIBRATION_VERSION, "gemm_n": gemm_n, "stream_elements": stream_elements,
                        "median_s": medians, "runtime": runtime, "board": board,
                        "threads": int(settings.get("threads", 1)),
                        "providers": list(settings.get("providers") or ["CPUExecutionProvider"]),
                        "time": provenance.now(), "harness_version": __version__},
    }


class PeakCache:
    """Measured peaks as JSON files under `directory`, one per (device, runtime, runtime
    version, threads, providers, calibration version and sizes)."""

    def __init__(self, directory: Path, gemm_n: Optional[int] = None, stream_elements: Optional[int] = None):
        self.directory = Path(directory)
        self.gemm_n, self.stream_elements = gemm_n or GEMM_N, stream_elements or STREAM_ELEMENTS

    def key(self, device: str, runtime: dict, settings: dict) -> dict:
        return {"device": device, "runtime": runtime.get("name"), "version": runtime.get("version"),
                "threads": int(settings.get("threads", 1)),
                "providers": list(settings.get("providers") or ["CPUExecutionProvider"]),
                "calibration": CALIBRATION_VERSION, "gemm_n": self.gemm_n, "stream_elements": self.stream_elements}

    def path(self, key: dict) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        return self.directory / f"peak-{digest}.json"

    def get(self, key: dict) -> Optional[dict]:
        path = self.path(key)
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return stored if stored.get("key") == key else None

    def peak(self, device: str, runtime: dict, settings: dict, run: Callable[[dict], dict],
             deploy: Callable[[Path], str]) -> dict:
        """The cached peak, or a fresh calibration (cached under the version it ran with)."""
        key = self.key(device, runtime, settings)
        found = self.get(key)
        if found is not None:
            return {**found, "cached": True}
        measured = measure_peak(run, deploy, settings, self.directory / "models", self.gemm_n, self.stream_elements)
        ran = measured["calibration"]["runtime"] or runtime
        key = self.key(device, ran, settings)
        record = {"key": key, **measured}
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path(key).with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(self.path(key))
        return {**record, "cached": False}


def profile_variant(doc: dict, *, device_name: str, device, run_spec: dict, model_path: Path,
                    input_shapes: Optional[dict], cache_dir: Path, datasheet: Optional[dict] = None) -> None:
    """Align a round document's profile to its model and add the measured roofline, in place
    (the BenchSession calls this after a campaign's rounds, before the result is stored)."""
    from . import modelinfo, profile

    prof = doc.get("profile")
    if not profile.offered(prof):
        return
    runtime = doc.get("runtime") or {}
    # a device that measures its own peak (an MCU firmware's inner-kernel loop) sends it inside
    # the profile; a host runtime's is calibrated here, through the same runtime
    peak = prof.get("peak")
    if runtime.get("name") == "onnxruntime":
        peak = PeakCache(Path(cache_dir) / "peaks").peak(device_name, runtime, run_spec, device.run, device.deploy)
    if peak and datasheet:
        peak = {**peak, "datasheet": datasheet}
    try:
        facts = modelinfo.node_facts(model_path, input_shapes)
    except (ModelError, ImportError) as exc:     # a .tflite without an interpreter on the host
        facts, prof = [], {**prof, "alignment_error": str(exc).splitlines()[0]}
    doc["profile"] = profile.enrich(prof, facts, peak)
