"""A real labgrid lab on loopback: `labgrid-coordinator`, one `labgrid-exporter` per SSH
test board (tests/sshboards.py) exporting it as a NetworkService, and places with tags made
through `labgrid-client`. Nothing of labgrid is mocked.

labgrid lives in its own virtualenv (its pyserial-labgrid and the harness's pyserial both
install `serial`): the one the harness itself would use (harness/devices/labgrid_client.py:
$HARNESS_LABGRID_PYTHON, this interpreter, or labgrid-client on PATH), else the CI's
/opt/edge-harness/labgrid made by .ci/install.d/labgrid.sh.
"""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

CI_VENV = Path(os.environ.get("EDGE_HARNESS_LABGRID_VENV", "/opt/edge-harness/labgrid"))


def labgrid_python() -> tuple[str | None, str | None]:
    """(interpreter with labgrid, None) or (None, why the labgrid tests skip)."""
    from harness.devices.labgrid_client import LabgridError, labgrid_python as find

    if not os.environ.get("HARNESS_LABGRID_PYTHON") and (CI_VENV / "bin" / "python").exists():
        os.environ["HARNESS_LABGRID_PYTHON"] = str(CI_VENV / "bin" / "python")
    try:
        python = find()
    except LabgridError as exc:
        return None, f"labgrid is not installed: {exc} (.ci/install.d/labgrid.sh makes {CI_VENV})"
    done = subprocess.run([python, "-I", "-c", "import labgrid.remote.client"], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        return None, f"{python} cannot import labgrid: {done.stderr.strip()[-300:]}"
    return python, None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabgridLab:
    def __init__(self, python: str, ssh_lab):
        self.python, self.ssh_lab = python, ssh_lab
        self.bin = Path(python).parent
        self.root = Path(tempfile.mkdtemp(prefix="edge-harness-labgrid-"))
        self.port = free_port()
        self.coordinator = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.cache = self.root / "cache"  # XDG_CACHE_HOME of the harness runs: its place lock files
        self._start([self.bin / "labgrid-coordinator", "-l", self.coordinator], "coordinator")
        self._wait_port(self.port)

    def _start(self, argv, name):
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen([str(a) for a in argv], cwd=self.root, stdout=log, stderr=log,
                                start_new_session=True, env={**os.environ, "PYTHONPATH": ""})
        log.close()
        self.procs.append(proc)
        return proc

    def _wait_port(self, port, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"labgrid-coordinator did not listen: {(self.root / 'coordinator.log').read_text()[-2000:]}")

    def env(self, user: str | None = None) -> dict:
        env = {**os.environ, "LG_COORDINATOR": self.coordinator, "XDG_CACHE_HOME": str(self.cache),
               "HARNESS_LABGRID_PYTHON": self.python}
        if user:
            env["LG_USERNAME"] = user
        return env

    def client(self, *args, user: str | None = None, check=True) -> str:
        done = subprocess.run([str(self.bin / "labgrid-client"), *args], env={**self.env(user), "PYTHONPATH": ""},
                              capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"labgrid-client {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout + done.stderr

    def export_board(self, board, exporter: str | None = None, extra: dict | None = None):
        """One exporter per board, publishing its sshd as a NetworkService (and `extra`
        resources of the same group, e.g. a NetworkPowerPort)."""
        exporter = exporter or f"exp-{board.name}"
        config = self.root / f"{exporter}.yaml"
        config.write_text(yaml.safe_dump({board.name: {"NetworkService": {
            "address": board.address, "username": board.user, "port": 2222}, **(extra or {})}}))
        self._start([self.bin / "labgrid-exporter", "-c", self.coordinator, "-n", exporter, config], exporter)
        deadline = time.monotonic() + 30
        while board.name not in self.client("resources"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"exporter {exporter} did not register: "
                                   f"{(self.root / f'{exporter}.log').read_text()[-2000:]}")
            time.sleep(0.2)
        return exporter

    def export_group(self, group: str, resources: dict) -> str:
        """An exporter publishing one group of resources as given (e.g. a NetworkSerialPort)."""
        exporter = f"exp-{group}"
        config = self.root / f"{exporter}.yaml"
        config.write_text(yaml.safe_dump({group: resources}))
        self._start([self.bin / "labgrid-exporter", "-c", self.coordinator, "-n", exporter, config], exporter)
        deadline = time.monotonic() + 30
        while f"{exporter}/{group}" not in self.client("resources"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"exporter {exporter} did not register")
            time.sleep(0.2)
        return exporter

    def add_place(self, place: str, board, tags: dict, extra: dict | None = None):
        exporter = self.export_board(board, extra=extra)
        self.client("-p", place, "create")
        self.client("-p", place, "add-match", f"{exporter}/{board.name}/*")
        self.client("-p", place, "set-tags", *[f"{k}={v}" for k, v in tags.items()])
        return place

    def device_yaml(self, name: str, board, *, devices_dir: Path, **labgrid) -> Path:
        """A `kind: labgrid` device file: what labgrid does not say comes from the YAML."""
        ssh_lab = self.ssh_lab
        data = {"kind": "labgrid", "description": f"labgrid test pool {name}", "python": board.python,
                "timeout_s": 120.0, "emulated": True,
                "capabilities": {"runtimes": ssh_lab.runtimes(board), "providers": ["CPUExecutionProvider"]},
                "settings": {"warmup": 2, "min_duration_s": 0.05, "min_iterations": 5},
                # the places' boards share the test machine: never invalid for a busy host
                "validity": {"max_contention_cores": 64.0, "max_round_spread": 1000.0, "max_freq_change": 100.0},
                "labgrid": {"coordinator": self.coordinator, "poll_s": 0.2, "reserve_timeout_s": 300.0,
                            **labgrid,
                            "ssh": {"key_file": str(ssh_lab.client_key), "known_hosts": str(ssh_lab.known_hosts),
                                    "ssh_config": "", "use_agent": False, "connect_timeout_s": 5.0,
                                    "retries": 1, "retry_wait_s": 0.5}}}
        devices_dir.mkdir(parents=True, exist_ok=True)
        path = devices_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def acquired_by(self, place: str) -> str | None:
        for line in self.client("-p", place, "show").splitlines():
            if line.strip().startswith("acquired:"):
                value = line.split(":", 1)[1].strip()
                return None if value == "None" else value
        return None

    def close(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)
