"""The runner's PyTorch backend on the CPU: the demo models exported to .pt2 from the
committed ONNX files (models/make_zoo.py --pt2), run through the real runner, agree with
onnxruntime on the same inputs. Skipped without torch (the `torch` extra)."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from harness.ondevice import runner
from harness.datasets import digits_split
from paths import ROOT

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[torch]')")

RUNNER = ROOT / "harness" / "ondevice" / "runner.py"
MODELS = ROOT / "models"


def _make_zoo():
    spec = importlib.util.spec_from_file_location("make_zoo", MODELS / "make_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pt2(tmp_path_factory):
    """{kind: .pt2 path}, exported once for the module."""
    folder = tmp_path_factory.mktemp("pt2")
    make_zoo = _make_zoo()
    return {kind: make_zoo.export_pt2(kind, MODELS / f"digits_{kind}.onnx", folder / f"digits_{kind}.pt2")
            for kind in ("cnn", "mlp")}


def test_export_reads_the_onnx_weights_without_the_onnx_package(monkeypatch):
    make_zoo = _make_zoo()
    path = MODELS / "digits_cnn.onnx"
    with_onnx = make_zoo.onnx_initializers(path)
    monkeypatch.setitem(sys.modules, "onnx", None)   # "import onnx" raises ImportError
    wire = make_zoo.onnx_initializers(path)
    assert sorted(wire) == sorted(with_onnx) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight",
                                                 "dw.bias", "dw.weight", "fc.bias", "fc.weight"]
    for name, array in with_onnx.items():
        assert wire[name].dtype == np.float32 and wire[name].shape == array.shape
        np.testing.assert_array_equal(wire[name], array)


def run(tmp_path, spec, expect_ok=True):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, str(RUNNER), str(spec_path)], capture_output=True, text=True,
                          timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] is expect_ok, (result, proc.stderr[-2000:])
    return result


def _outputs(backend, path, feeds):
    backend.init(backend.load(str(path)))
    backend.signature()
    return np.concatenate([backend.set_and_run(feed)[0].reshape(1, -1) for feed in feeds])


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_pt2_outputs_agree_with_onnxruntime(pt2, kind):
    test = digits_split()["test"]
    shape = (1, 1, 8, 8) if kind == "cnn" else (1, 64)
    feeds = [{"input": x.reshape(shape).astype(np.float32)} for x in test.x[:200]]
    onnx_path = MODELS / f"digits_{kind}.onnx"
    ort = _outputs(runner.OnnxruntimeBackend({"model": str(onnx_path)}), onnx_path, feeds)
    pt = _outputs(runner.TorchBackend({"model": str(pt2[kind])}), pt2[kind], feeds)
    assert pt.shape == ort.shape == (200, 10)
    np.testing.assert_allclose(pt, ort, rtol=1e-4, atol=1e-5)
    assert (pt.argmax(1) == ort.argmax(1)).all()
    # the backend changes no process-wide torch state (variant_build imports the runner and
    # fine-tunes with autograd in the same process)
    assert torch.is_grad_enabled()


def test_runner_measures_a_pt2_program_on_the_cpu(tmp_path, pt2):
    test = digits_split()["test"]
    np.savez(tmp_path / "digits.npz", x=test.x, y=test.y)
    common = {"min_iterations": 20, "min_duration_s": 0, "warmup": 2, "dataset": str(tmp_path / "digits.npz")}
    r = run(tmp_path, dict(common, model=str(pt2["cnn"])))   # runtime auto: the .pt2 suffix picks torch
    assert r["runtime"]["name"] == "torch" and r["runtime"]["device"] == "cpu"
    assert r["runtime"]["version"] == torch.__version__
    assert r["model"]["inputs"] == [{"name": "input", "shape": [1, 1, 8, 8], "dtype": "float32"}]
    assert r["model"]["outputs"][0]["shape"] == [1, 10]
    assert len(r["latencies_ns"]) == r["loop"]["iterations"] >= 20
    assert set(r["timings_ms"]) == {"import", "load", "init", "first_inference", "warmup_total"}
    # the CPU run reads no GPU state and records no GPU settings
    assert "gpu" not in r["machine"]["before"] and "gpu" not in r["memory"] and "io" not in r["settings"]
    onnx_run = run(tmp_path, dict(common, model=str(MODELS / "digits_cnn.onnx")))
    assert r["accuracy"]["n"] == onnx_run["accuracy"]["n"] == len(test.y)
    assert r["accuracy"]["correct"] == onnx_run["accuracy"]["correct"]


def test_cuda_on_a_machine_without_it_is_a_typed_error(tmp_path, pt2):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run(tmp_path, {"model": str(pt2["mlp"]), "device": "cuda"}, expect_ok=False)
    assert r["error"]["type"] == "ProviderMissing"
    assert "no CUDA device" in r["error"]["message"] and torch.__version__ in r["error"]["message"]


@pytest.mark.parametrize("spec, words", [
    ({"device": "gpu0"}, "device: expected cpu, cuda or cuda:N"),
    ({"io": "pinned"}, "io: expected device or host"),
    ({"sync": "yes"}, "sync: expected true or false"),
    ({"runtime": "tensorflow"}, "torch"),
])
def test_bad_gpu_settings_are_named(pt2, spec, words):
    with pytest.raises(runner.RunnerFailure, match=words) as failure:
        runner.make_backend(dict({"model": str(pt2["mlp"])}, **spec))
    assert failure.value.kind == "BadSpec"


def test_probe_reports_torch_and_cuda_from_its_own_interpreter(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "harness" / "ondevice" / "probe.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])["runtimes"]["torch"]
    assert found["version"] == torch.__version__ and found["cuda_build"] == torch.version.cuda
    assert found["cuda_available"] is torch.cuda.is_available()
    assert ("cuda_devices" in found) is torch.cuda.is_available()


def test_a_pt2_variant_is_measured_through_the_session_like_any_other(tmp_path, pt2):
    import shutil

    from harness import variant_build
    from harness.inventory import Inventory
    from harness.session import BenchSession
    from harness.store import Store

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(MODELS / "digits_cnn.onnx", models / "digits_cnn.onnx")
    shutil.copy(pt2["cnn"], models / "digits_cnn.pt2")
    (models / "cnn.yaml").write_text(
        "name: digits-cnn\nbase: digits_cnn.onnx\ndataset: digits\nvariants:\n"
        "  - {name: fp32, technique: fp32}\n  - {name: pt2, file: digits_cnn.pt2, technique: pt2}\n")
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "local.yaml").write_text(
        "kind: local\ncapabilities: {runtimes: [onnxruntime, torch]}\n"
        "settings: {min_duration_s: 0.02, min_iterations: 20, warmup: 2, rounds: 1, device: cpu}\n")
    manifests = variant_build.load_manifests(models)
    assert manifests[0].recipe("pt2").runtimes == ("torch",)
    s = BenchSession(Inventory(tmp_path / "devices"), Store(f"sqlite:///{tmp_path / 'store.sqlite'}"), manifests,
                cache=tmp_path / "cache", order_seed=3)
    s.select(variant_build.select(manifests, None))
    try:
        pt = s.measure("local", manifests[0], manifests[0].recipe("pt2"))
        onnx_m = s.measure("local", manifests[0], manifests[0].recipe("fp32"))
    finally:
        s.close()
    assert pt.format == "pt2" and pt.provenance["runtime"]["name"] == "torch"
    assert pt.settings["device"] == "cpu" and pt.n_params == onnx_m.n_params == 954   # 80 + 80 + 144 + 650
    assert pt.accuracy == onnx_m.accuracy and pt.host_accuracy == onnx_m.host_accuracy > 0.9
    assert pt.latency.n >= 20


def test_a_gpu_run_carries_gpu_state_memory_and_settings(pt2, monkeypatch):
    """measure()'s GPU branch end to end in this process: NVML read through the fake pynvml
    (recorded readings), the torch backend with its CUDA flag raised on a CPU device (no
    CUDA here: the kernels are the CPU's, the wiring around them is the GPU run's)."""
    from harness import document, machine
    from paths import FAKE_PYNVML as FAKE_DIR

    spec = importlib.util.spec_from_file_location("pynvml", FAKE_DIR / "pynvml.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    fake.SCENARIO, fake.EDGE = "steady", 0
    monkeypatch.setitem(sys.modules, "pynvml", fake)

    class CudaFlagOnCpu(runner.TorchBackend):
        def __init__(self, spec):
            runner.TorchBackend.__init__(self, dict(spec, device="cpu"))
            self.cuda = True

        def init(self, path):
            self.cuda = False   # load on the CPU: no device to move to
            runner.TorchBackend.init(self, path)
            self.cuda = True

        def facts(self):
            self.cuda = False
            try:
                return runner.TorchBackend.facts(self)
            finally:
                self.cuda = True

    monkeypatch.setattr(runner, "make_backend", CudaFlagOnCpu)
    doc = runner.measure({"model": str(pt2["mlp"]), "sync": False, "io": "device", "min_iterations": 5,
                          "min_duration_s": 0, "warmup": 1})
    document.validate(doc, "gpu wiring")
    assert doc["settings"]["sync"] is False and doc["settings"]["io"] == "device"
    assert doc["settings"]["gpu_index"] == 0
    assert doc["machine"]["before"]["gpu"]["sm_clock_mhz"] == 1980
    assert doc["machine"]["after"]["gpu"]["energy_mj"] == 987654321
    assert doc["memory"]["gpu_process_peak_bytes"] == 536870912
    assert set(doc["memory"]["gpu"]) >= {"before_init", "after_init", "after_first", "after_warmup", "after_timed"}
    window = machine.window_state(doc["machine"]["before"], doc["machine"]["after"])
    assert window["gpu"]["throttle"] == [] and window["gpu"]["name"] == "NVIDIA H200"
