"""The `local` kind: this machine, exactly as a remote board is driven.

Each measurement starts the on-device runner in a fresh subprocess from a copy of the
runner file, so local and remote share one path (one interpreter start, one model load,
one JSON document) and no state leaks between measurements.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import DeviceError, RunnerError
from ..registry import Option
from .base import Device

RUNNER = Path(__file__).resolve().parent.parent / "ondevice" / "runner.py"


def decode_runner_output(device: str, stdout: str, stderr: str, returncode: int) -> dict:
    """The runner's JSON document, or a RunnerError that carries the device's stderr."""
    text = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    try:
        raw = json.loads(text) if text else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        raise RunnerError(device, "NoResult", f"the runner exited with {returncode} and printed no result", stderr)
    if not raw.get("ok"):
        error = raw.get("error") or {}
        raise RunnerError(device, error.get("type", "Unknown"), error.get("message", "no message"), stderr)
    return raw


def runner_env(threads: int) -> dict:
    """Child environment with the BLAS/OpenMP pools pinned like the runtime's own threads.

    Always overridden, never inherited: the stored settings must be what ran, whatever the
    controller (a CI job, a shell) happens to export."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class LocalDevice(Device):
    """This machine: the runner in a fresh subprocess per measurement."""

    is_controller = True
    OPTIONS = {"workdir": Option(str, None, help="where the per-session temporary directory is made "
                                                 "(default: the system's temporary directory)")}

    def __init__(self, spec):
        super().__init__(spec)
        self._tmp = None      # the session's temporary directory, made at connect
        self.workdir = None
        self.runner = None

    def connect(self):
        base = self.spec.options.get("workdir")
        self._tmp = tempfile.TemporaryDirectory(prefix="harness-local-", dir=base)
        self.workdir = Path(self._tmp.name)
        # A copy, as a board gets one: the run does not depend on the source tree's state.
        self.runner = self.workdir / "runner.py"
        self.runner.write_bytes(RUNNER.read_bytes())

    def deploy(self, artifact: Path) -> str:
        artifact = Path(artifact)
        if not artifact.is_file():
            raise DeviceError(f"{self.name}: cannot deploy {artifact}: no such file")
        return str(artifact.resolve())

    def run(self, spec: dict) -> dict:
        spec_path = self.workdir / "spec.json"
        spec_path.write_text(json.dumps(spec))
        python = self.spec.python or sys.executable
        try:
            proc = subprocess.run(
                [python, str(self.runner), str(spec_path)],
                capture_output=True, text=True, timeout=self.spec.timeout_s,
                env=runner_env(int(spec.get("threads", 1))),
            )
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(f"{self.name}: the runner did not finish within timeout_s={self.spec.timeout_s}") from exc
        except OSError as exc:
            raise DeviceError(f"{self.name}: cannot start the runner with python {python!r}: {exc}") from exc
        return decode_runner_output(self.name, proc.stdout, proc.stderr, proc.returncode)

    def meter_source(self, root: str = "/"):
        from ..power.source import LocalSource

        return LocalSource(root)

    def machine_snapshot(self):
        code, out = self.execute([self.spec.python or sys.executable, str(self.runner), "--machine"])
        return json.loads(out.splitlines()[-1]) if code == 0 and out else None

    def execute(self, argv: list, timeout_s: float = 60.0) -> tuple:
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.name}: {argv[0]} did not finish within {timeout_s:.0f} s") from None
        except OSError as exc:
            raise DeviceError(f"{self.name}: cannot run {argv[0]!r}: {exc}") from None
        return proc.returncode, (proc.stdout + proc.stderr).strip()

    def info(self) -> dict:
        return {"kind": self.spec.kind, "hostname": platform.node(), "machine": platform.machine(),
                "system": platform.system(), "release": platform.release()}

    def close(self):
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
