"""pytest fixtures for the SSH test boards; skipped with the reason when not root."""
from __future__ import annotations

import pytest

from sshboards import Lab, skip_reason
from sshmodels import matmul_model


@pytest.fixture(scope="session")
def lab():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="session")
def fast_board(lab):
    return lab.add_board("fast")


@pytest.fixture(scope="session")
def slow_board(lab):
    """25 % of one CPU: a really slower board."""
    return lab.add_board("slow", cpu_quota_pct=25)


@pytest.fixture(scope="session")
def old_board(lab):
    """An older image: numpy < 2 and tflite-runtime 2.14, no onnxruntime."""
    return lab.add_board("old", python_env="old-image")


@pytest.fixture
def board_factory(lab):
    """Boards a test may break (kill, fill, starve); torn down with the lab."""
    def make(prefix, **kw):
        return lab.add_board(f"{prefix}{len(lab.boards)}", **kw)
    return make


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    return matmul_model(tmp_path_factory.mktemp("models") / "small.onnx", 64)


@pytest.fixture(scope="session")
def big_model(tmp_path_factory):
    """About 20 MB (2236 x 2236 float32 weights)."""
    return matmul_model(tmp_path_factory.mktemp("models") / "big.onnx", 2236)
