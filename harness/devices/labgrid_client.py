"""Talking to a labgrid coordinator: the bridge process (labgrid_bridge.py) and its requests.

labgrid may live in another virtualenv than the harness (its `pyserial-labgrid` and the
harness's `pyserial` install the same `serial` module), so the harness never imports it: it
starts labgrid_bridge.py with the Python that has labgrid, found in this order:

    the device YAML's labgrid.python, $HARNESS_LABGRID_PYTHON,
    this interpreter when it can import labgrid,
    the interpreter of `labgrid-client` on PATH (pipx, a lab venv)

Every request has a timeout; a bridge that does not answer in time is stopped.
"""
from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional

from ..errors import DeviceError

BRIDGE = Path(__file__).resolve().parent / "labgrid_bridge.py"
DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default
REQUEST_TIMEOUT_S = 60.0
INSTALL_HINT = ("install labgrid (`pip install 'edge-harness[labgrid]'`, or into its own venv: "
                "`pipx install labgrid`) or name its interpreter in labgrid.python or $HARNESS_LABGRID_PYTHON")


class LabgridError(DeviceError):
    """The coordinator refused a request, or cannot be reached."""


def coordinator_address(configured: Optional[str]) -> str:
    return configured or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


def labgrid_python(configured: Optional[str] = None) -> str:
    """The interpreter that runs the bridge; LabgridError (with how to install) if none."""
    chosen = configured or os.environ.get("HARNESS_LABGRID_PYTHON")
    if chosen:
        path = shutil.which(os.path.expanduser(chosen))
        if not path:
            raise LabgridError(f"labgrid python {chosen!r} does not exist; {INSTALL_HINT}")
        return path
    if importlib.util.find_spec("labgrid") is not None:
        return sys.executable
    client = shutil.which("labgrid-client")
    if client:
        with open(client, "rb") as f:
            first = f.readline().decode(errors="replace").strip()
        if first.startswith("#!") and os.access(first[2:].split()[0], os.X_OK):
            return first[2:].split()[0]
    raise LabgridError(f"labgrid is not installed for this Python and no labgrid-client is on PATH; "
                       f"{INSTALL_HINT}")


class Bridge:
    """One bridge process: requests in, answers out, each within a timeout."""

    def __init__(self, coordinator: str, python: Optional[str] = None, label: str = "labgrid",
                 timeout_s: float = REQUEST_TIMEOUT_S):
        self.coordinator, self.label, self.timeout_s = coordinator, label, timeout_s
        self.python = labgrid_python(python)
        self._answers: "queue.Queue[Optional[str]]" = queue.Queue()
        self._lock = threading.Lock()
        # -I: the bridge's own directory must not shadow labgrid's `serial` with ours
        self._proc = subprocess.Popen(
            [self.python, "-I", str(BRIDGE), "--coordinator", coordinator],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._stderr: list[str] = []
        threading.Thread(target=self._read, args=(self._proc.stdout, self._answers.put), daemon=True).start()
        threading.Thread(target=self._read, args=(self._proc.stderr, self._keep_stderr), daemon=True).start()

    @staticmethod
    def _read(stream, sink):
        for line in stream:
            sink(line)
        sink(None)

    def _keep_stderr(self, line):
        if line is not None:
            self._stderr = (self._stderr + [line.rstrip()])[-20:]

    def call(self, op: str, timeout_s: Optional[float] = None, **args):
        with self._lock:
            if self._proc.poll() is not None:
                raise LabgridError(f"{self.label}: the labgrid bridge exited: {self._why()}")
            try:
                self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
                self._proc.stdin.flush()
                line = self._answers.get(timeout=timeout_s or self.timeout_s)
            except (BrokenPipeError, OSError):
                line = None
            except queue.Empty:
                self.close()
                raise LabgridError(f"{self.label}: the labgrid coordinator at {self.coordinator} did not answer "
                                   f"{op!r} within {timeout_s or self.timeout_s:g} s") from None
            if line is None:
                self._proc.wait(timeout=10)
                raise LabgridError(f"{self.label}: the labgrid bridge exited: {self._why()}")
            answer = json.loads(line)
            if not answer.get("ok"):
                raise LabgridError(f"{self.label}: labgrid: {answer.get('error')}")
            return answer.get("result")

    def _why(self) -> str:
        lines = [line for line in self._stderr if line.strip()]
        return f"exit {self._proc.returncode}: " + (lines[-1] if lines else "no message")

    def close(self):
        """End of input: the bridge releases what it still holds, then exits."""
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=5)


def open_bridge(coordinator: str, python: Optional[str], label: str,
                timeout_s: float = REQUEST_TIMEOUT_S) -> Bridge:
    bridge = Bridge(coordinator, python, label, timeout_s)
    try:
        bridge.call("hello")
    except BaseException:
        bridge.close()
        raise
    return bridge
