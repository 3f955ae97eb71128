"""A compute-bound model and board setups for the lab CI end-to-end tests.

The demo zoo's models infer in microseconds, far below a CPU quota's period, so throttling
would only touch their tail. This model takes about a millisecond per inference, so a CPU
quota slows every inference, as it slows a real board's."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from onnx_models import matmul_chain
from paths import ROOT


def write_slow_model(models_dir: Path, width: int = 512, layers: int = 4, batch: int = 256) -> Path:
    matmul_chain(models_dir / "slow_mlp.onnx", width, depth=layers, batch=batch, relu=True)
    (models_dir / "slow_mlp.yaml").write_text(
        "name: slow-mlp\nbase: slow_mlp.onnx\nvariants:\n  - {name: fp32, technique: fp32}\n")
    return models_dir


def write_local_boards(devices_dir: Path, names) -> Path:
    """Boards of the local kind under other names (like several identical boards on a shelf)."""
    devices_dir.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "devices" / "local.yaml").read_text()
    for name in names:
        (devices_dir / f"{name}.yaml").write_text(text)
    return devices_dir


def have_cgroup_v1_cpu() -> bool:
    return os.geteuid() == 0 and Path("/sys/fs/cgroup/cpu/cgroup.procs").exists() and bool(shutil.which("cgexec"))
