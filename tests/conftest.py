"""Fixtures shared by the harness's own tests."""
# Real SSH test boards (network namespaces + sshd), see tests/sshboards.py.
from sshfixtures import lab, fast_board, slow_board, old_board, board_factory, small_model, big_model  # noqa: F401
