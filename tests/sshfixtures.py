"""pytest fixtures for the SSH test boards; skipped with the reason when not root."""
from __future__ import annotations

import os

import pytest

import arm64board
from sshboards import Lab, skip_reason
from onnx_models import matmul_chain


@pytest.fixture(scope="session")
def ssh_lab():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    ssh_lab = Lab()
    try:
        yield ssh_lab
    finally:
        ssh_lab.close()


@pytest.fixture(scope="session")
def fast_board(ssh_lab):
    return ssh_lab.add_board("fast")


@pytest.fixture(scope="session")
def slow_board(ssh_lab):
    """25 % of one CPU: a really slower board."""
    return ssh_lab.add_board("slow", cpu_quota_pct=25)


@pytest.fixture(scope="session")
def old_board(ssh_lab):
    """An older image: numpy < 2 and tflite-runtime 2.14, no onnxruntime."""
    return ssh_lab.add_board("old", python_env="old-image")


@pytest.fixture
def make_board(ssh_lab):
    """Boards a test may break (kill, fill, starve); torn down with the lab."""
    def make(prefix, **kw):
        return ssh_lab.add_board(f"{prefix}{len(ssh_lab.boards)}", **kw)
    return make


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    return matmul_chain(tmp_path_factory.mktemp("models") / "small.onnx", 64)


@pytest.fixture(scope="session")
def onnx_20mb(tmp_path_factory):
    """About 20 MB (2236 x 2236 float32 weights)."""
    return matmul_chain(tmp_path_factory.mktemp("models") / "big.onnx", 2236)


# The emulated aarch64 boards (tests/arm64board.py): QEMU is registered through binfmt_misc
# for this session only; skipped with the reason where the root filesystem is not built.
@pytest.fixture(scope="session")
def arm64_binfmt(ssh_lab):
    reason = arm64board.skip_reason()
    if reason:
        pytest.skip(reason)
    with arm64board.Binfmt(f"edge-harness-arm64-{ssh_lab.token}-{os.getpid()}") as entry:
        yield entry


@pytest.fixture(scope="session")
def arm64_board(ssh_lab, arm64_binfmt):
    """numpy 2, onnxruntime and ai-edge-litert from their aarch64 wheels."""
    return arm64board.add_board(ssh_lab, "arm64")


@pytest.fixture(scope="session")
def arm64_old_board(ssh_lab, arm64_binfmt):
    """An older aarch64 image: Debian's numpy 1.24 and tflite-runtime 2.14, no onnxruntime."""
    return arm64board.add_board(ssh_lab, "arm64old", env="old-image")
