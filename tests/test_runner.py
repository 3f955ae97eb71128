"""The on-device runner, run as a board runs it: a fresh interpreter, a JSON spec, JSON out."""
import ast
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from harness.ondevice import runner
from onnx_models import single_op_model
from paths import ROOT

RUNNER = ROOT / "harness" / "ondevice" / "runner.py"


def run(tmp_path, spec, expect_ok=True):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, str(RUNNER), str(spec_path)], capture_output=True,
                          text=True, timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] is expect_ok, result
    assert (proc.returncode == 0) is expect_ok
    return result


def test_stops_when_both_minimum_count_and_duration_are_met(tmp_path, identity_model):
    by_count = run(tmp_path, {"model": str(identity_model), "min_iterations": 3000, "min_duration_s": 0.0})
    assert by_count["loop"]["iterations"] == 3000 == len(by_count["latencies_ns"])
    by_time = run(tmp_path, {"model": str(identity_model), "min_iterations": 1, "min_duration_s": 0.3})
    assert by_time["loop"]["wall_ns"] >= 0.3e9
    assert by_time["loop"]["stop_reason"] == "min_duration_and_count"
    capped = run(tmp_path, {"model": str(identity_model), "min_iterations": 5, "max_iterations": 50,
                            "min_duration_s": 60})
    assert capped["loop"]["iterations"] == 50 and capped["loop"]["stop_reason"] == "max_iterations"


def test_result_document_has_every_phase(tmp_path, identity_model):
    r = run(tmp_path, {"model": str(identity_model), "min_iterations": 10, "min_duration_s": 0, "warmup": 3,
                       "threads": 1})
    assert set(r["timings_ms"]) == {"import", "load", "init", "first_inference", "warmup_total"}
    assert all(v >= 0 for v in r["timings_ms"].values())
    assert r["runtime"]["name"] == "onnxruntime" and r["runtime"]["providers_used"] == ["CPUExecutionProvider"]
    assert {"start", "before_load", "after_init", "after_first", "after_warmup", "after_timed"} <= set(r["memory"]["hwm_kb"])
    assert r["host"]["python"] and r["numpy_version"] == np.__version__
    assert r["window"]["end_unix_s"] >= r["window"]["start_unix_s"]
    assert r["model"]["inputs"] == [{"name": "x0", "shape": [1, 4], "dtype": "float32"}]


def test_memory_shows_the_weights_the_model_holds(tmp_path, identity_model, onnx_20mb):
    quick = {"min_iterations": 1, "min_duration_s": 0, "warmup": 0}
    small = run(tmp_path, {"model": str(identity_model), **quick})["memory"]
    big = run(tmp_path, {"model": str(onnx_20mb), **quick})["memory"]
    weights_kb = 0.9 * onnx_20mb.stat().st_size / 1024
    # 20 MB of weights are paid while loading, and are in the peak; a model without
    # weights pays next to nothing there.
    assert big["load_growth_kb"] >= weights_kb > small["load_growth_kb"]
    assert big["peak_rss_kb"] - big["hwm_kb"]["before_load"] >= weights_kb
    assert big["peak_rss_kb"] - small["peak_rss_kb"] >= weights_kb


def test_accuracy_from_a_labelled_dataset(tmp_path, identity_model):
    # Identity over 4 values: argmax of the input itself is the label by construction.
    x = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 1, 2]]
    y = np.array([0, 1, 2, 3, 1, 0])  # the last one is wrong on purpose
    np.savez(tmp_path / "d.npz", x=x, y=y)
    r = run(tmp_path, {"model": str(identity_model), "min_iterations": 1, "min_duration_s": 0,
                       "dataset": str(tmp_path / "d.npz")})
    assert r["accuracy"] == {"top1": 5 / 6, "correct": 5, "n": 6}


def test_int_bool_and_dynamic_inputs_are_generated(tmp_path):
    ints = single_op_model(tmp_path / "ints.onnx", shape=(2, 3), dtype=onnx.TensorProto.INT64)
    r = run(tmp_path, {"model": str(ints), "min_iterations": 2, "min_duration_s": 0})
    assert r["model"]["inputs"][0]["dtype"] == "int64"
    booleans = single_op_model(tmp_path / "b.onnx", op="Not", shape=(1, 5), dtype=onnx.TensorProto.BOOL)
    run(tmp_path, {"model": str(booleans), "min_iterations": 2, "min_duration_s": 0})
    two = single_op_model(tmp_path / "two.onnx", op="Add", shape=(1, 8), inputs=2)
    run(tmp_path, {"model": str(two), "min_iterations": 2, "min_duration_s": 0})
    dynamic = single_op_model(tmp_path / "dyn.onnx", shape=(1, 4), dynamic=True)
    fixed = run(tmp_path, {"model": str(dynamic), "min_iterations": 2, "min_duration_s": 0,
                           "inputs": [{"name": "x0", "shape": [8, 4]}]})
    assert fixed["ok"]


@pytest.mark.parametrize("case, error_type, words", [
    ("missing", "ModelLoad", "model file not found"),
    ("corrupt", "ModelLoad", "cannot load the model"),
    ("dynamic", "Input", "dynamic dimension 'batch'"),
    ("no_runtime", "RuntimeMissing", "tflite_runtime is not installed"),
    ("provider", "ProviderMissing", "NoSuchExecutionProvider"),
    ("bad_spec", "BadSpec", "min_iterations"),
    ("dataset_shape", "Input", "dataset samples have 3 values"),
])
def test_failures_are_typed_and_explained(tmp_path, identity_model, case, error_type, words):
    spec = {"model": str(identity_model), "min_iterations": 1, "min_duration_s": 0}
    if case == "missing":
        spec["model"] = str(tmp_path / "nope.onnx")
    elif case == "corrupt":
        (tmp_path / "bad.onnx").write_bytes(b"\x00garbage" * 50)
        spec["model"] = str(tmp_path / "bad.onnx")
    elif case == "dynamic":
        spec["model"] = str(single_op_model(tmp_path / "dyn.onnx", dynamic=True))
    elif case == "no_runtime":
        spec["runtime"] = "tflite_runtime"
    elif case == "provider":
        spec["providers"] = ["NoSuchExecutionProvider"]
    elif case == "bad_spec":
        spec["min_iterations"] = "many"
    elif case == "dataset_shape":
        np.savez(tmp_path / "d.npz", x=np.zeros((2, 3), np.float32), y=np.zeros(2))
        spec["dataset"] = str(tmp_path / "d.npz")
    if case == "no_runtime":
        try:
            import tflite_runtime  # noqa: F401
            pytest.skip("tflite_runtime is installed here")
        except ImportError:
            pass
    r = run(tmp_path, spec, expect_ok=False)
    assert r["error"]["type"] == error_type
    assert words in r["error"]["message"]


def test_litert_backend_quantizes_int8_inputs(tmp_path):
    pytest.importorskip("ai_edge_litert")
    x = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(5, np.int64))
    r = run(tmp_path, {"model": str(ROOT / "models" / "digits_cnn_int8.tflite"), "min_iterations": 5,
                       "min_duration_s": 0, "dataset": str(tmp_path / "d.npz")})
    assert r["runtime"]["name"] == "litert"
    assert r["model"]["inputs"][0]["dtype"] == "int8"
    assert r["model"]["inputs"][0]["quantization"]["scale"] > 0
    assert r["accuracy"]["n"] == 5


def test_runner_stays_one_python38_file_with_stdlib_numpy_and_runtime_only():
    source = RUNNER.read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    allowed = {"json", "os", "platform", "socket", "subprocess", "sys", "time", "resource", "numpy", "onnxruntime",
               "torch", "pynvml",  # imported only by the torch backend and where a GPU is used
               "ai_edge_litert", "tflite_runtime", "importlib", "traceback", "__future__",
               "bisect", "shutil", "tempfile"}   # stdlib: the profiled pass (harness/profile.py)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= allowed, imported - allowed


def test_timed_loop_counts_and_reasons():
    calls = []
    lat, loop = runner.timed_loop(lambda: calls.append(1), 0.0, 7, 100)
    assert len(lat) == len(calls) == 7 == loop["iterations"]
    assert all(v >= 0 for v in lat)


def test_unexpected_failure_is_still_one_json_answer(tmp_path, identity_model):
    # A non-numeric duration is not checked up front: it fails inside, and must still come
    # back as a typed JSON error rather than a bare traceback.
    r = run(tmp_path, {"model": str(identity_model), "min_iterations": 1, "min_duration_s": "soon"},
            expect_ok=False)
    assert r["error"]["type"] == "Internal" and "ValueError" in r["error"]["message"]
