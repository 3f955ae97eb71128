"""The user's command on the emulated board: `pytest suites/ --device qemu-m3` runs the same
suites as every other device kind, measures, stores and reports (labelled emulated)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.mcu import build as fwbuild
from harness.mcu import qemu

ROOT = Path(__file__).resolve().parents[1]
missing = fwbuild.toolchain_missing() or qemu.qemu_missing()


@pytest.mark.skipif(missing is not None, reason=f"emulated board: {missing}")
def test_the_suites_run_on_the_emulated_board(tmp_path):
    pytest.importorskip("ai_edge_litert")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/", "--device", "qemu-m3", "--variants", "digits-mlp/*",
         "--store", f"sqlite:///{tmp_path / 'store.sqlite'}", "--report", str(tmp_path / "report.html"),
         "-p", "no:cacheprovider", "-q", "-rs"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "qemu-m3 (emulated)  digits-mlp/tflite-int8" in out
    # variants the board cannot run are skipped with the reason, not failed
    assert "qemu-m3 cannot run fp32: it needs one of the runtimes onnxruntime" in out
    assert (tmp_path / "report.html").stat().st_size > 0
