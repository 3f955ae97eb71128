"""Shared helpers of the power tests (not a test module)."""
import sys
import time
from pathlib import Path

from harness.inventory import parse_device

FAKES = Path(__file__).resolve().parent / "fakes"


def fake(name: str) -> list:
    """argv running a fake program with this interpreter (no reliance on the shebang)."""
    return [sys.executable, str(FAKES / name)]


def spec_with(power, name="board"):
    return parse_device({"kind": "local", "power": power}, f"devices/{name}.yaml", name)


def record(m, seconds):
    """start, sleep, stop: one trace (no wall-clock asserts are made on it)."""
    m.start()
    try:
        time.sleep(seconds)
    finally:
        trace = m.stop()
    return trace
