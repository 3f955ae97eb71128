"""The board probe imports each runtime in its own interpreter: one that crashes on import
is named with its signal, and the others are still found."""
import json
import os
import subprocess
import sys
from paths import ROOT


PROBE = ROOT / "harness" / "ondevice" / "probe.py"


def test_a_runtime_that_crashes_on_import_is_named_and_the_others_survive(tmp_path):
    fake = tmp_path / "site" / "tflite_runtime"
    fake.mkdir(parents=True)
    # what onnxruntime and LiteRT did under QEMU 7.2's user mode: SIGSEGV while importing
    (fake / "__init__.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    done = subprocess.run([sys.executable, str(PROBE), str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    runtimes = json.loads(done.stdout.strip().splitlines()[-1])["runtimes"]
    assert runtimes["tflite_runtime"]["crashed"] == "SIGSEGV"
    assert "crashed the interpreter (SIGSEGV)" in runtimes["tflite_runtime"]["missing"]
    assert "version" in runtimes["onnxruntime"]
