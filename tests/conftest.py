"""Shared fixtures of the harness's own tests."""
from pathlib import Path

import onnx
import onnx.helper as oh
import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent


def make_onnx(path: Path, op="Identity", shape=(1, 4), dtype=onnx.TensorProto.FLOAT, dynamic=False, inputs=1):
    """A tiny ONNX model: `op` over `inputs` inputs of `shape` (the first dim symbolic if dynamic)."""
    dims = ["batch"] + list(shape[1:]) if dynamic else list(shape)
    ins = [oh.make_tensor_value_info(f"x{i}", dtype, dims) for i in range(inputs)]
    out = oh.make_tensor_value_info("y", dtype, dims)
    node = oh.make_node(op, [i.name for i in ins], ["y"])
    model = oh.make_model(oh.make_graph([node], "tiny", ins, [out]), opset_imports=[oh.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def identity_model(tmp_path):
    return make_onnx(tmp_path / "identity.onnx")


@pytest.fixture
def repo():
    return REPO


# Real SSH test boards (network namespaces + sshd, root only): tests/sshboards.py.
from sshfixtures import arm64_binfmt, arm64_board, arm64_old_board  # noqa: E402,F401
from sshfixtures import fast_board, make_board, old_board, onnx_20mb, slow_board, ssh_lab, tiny_onnx  # noqa: E402,F401
