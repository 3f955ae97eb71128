"""A compute-bound model and board setups for the lab CI end-to-end tests.

The demo zoo's models infer in microseconds, far below a CPU quota's period, so throttling
would only touch their tail. This model takes about a millisecond per inference, so a CPU
quota slows every inference, as it slows a real board's."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def write_slow_model(models_dir: Path, width: int = 512, layers: int = 4, batch: int = 256) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "input"
    for i in range(layers):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Relu", [f"m{i}"], [f"r{i}"]))
        prev = f"r{i}"
    nodes[-1] = helper.make_node("Relu", [f"m{layers - 1}"], ["output"])
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, width])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    models_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, models_dir / "slow_mlp.onnx")
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


def pytest_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")  # this checkout's harness
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def have_cgroup_v1_cpu() -> bool:
    return os.geteuid() == 0 and Path("/sys/fs/cgroup/cpu/cgroup.procs").exists() and bool(shutil.which("cgexec"))
