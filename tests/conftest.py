"""Shared fixtures of the harness's own tests."""
import pytest

from onnx_models import single_op_model
from paths import ROOT

pytest_plugins = ["pytester"]


@pytest.fixture
def identity_model(tmp_path):
    return single_op_model(tmp_path / "identity.onnx")


@pytest.fixture
def repo():
    return ROOT


# Real SSH test boards (network namespaces + sshd, root only): tests/sshboards.py.
from sshfixtures import arm64_binfmt, arm64_board, arm64_old_board  # noqa: E402,F401
from sshfixtures import fast_board, make_board, old_board, onnx_20mb, slow_board, ssh_lab, tiny_onnx  # noqa: E402,F401
