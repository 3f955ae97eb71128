"""The ssh kind against real sshd test boards (network namespaces, cgroups): needs root."""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import threading
import time

import pytest

from harness.devices.ssh import SshDevice, check_board, clean_board
from harness.devices.sshlink import BoardLost, NoSpace
from harness.errors import DeviceError, RunnerError
from onnx_models import matmul_chain
from paths import MODELS, TESTS

QUICK = {"warmup": 2, "min_duration_s": 0.05, "min_iterations": 5}


def run_spec(handle, **kw):
    spec = {"model": handle}
    spec.update(QUICK)
    spec.update(kw)
    return spec


def test_connect_deploy_run_and_provenance(ssh_lab, fast_board, tiny_onnx):
    with SshDevice(ssh_lab.spec(fast_board)) as device:
        raw = device.run(run_spec(device.deploy(tiny_onnx)))
        info = device.info()
    assert raw["ok"] and raw["loop"]["iterations"] >= 5
    assert raw["runtime"]["name"] == "onnxruntime"
    assert info["kind"] == "ssh" and info["board"] == "generic"
    assert info["python"] and info["numpy"] and "onnxruntime" in info["runtimes"]


def test_changed_host_key_is_refused(ssh_lab, fast_board, tmp_path):
    other = tmp_path / "known_hosts"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    fake = (tmp_path / "k.pub").read_text().split()
    other.write_text(f"[{fast_board.address}]:{fast_board.port} {fake[0]} {fake[1]}\n")
    message = ssh_lab.refusal(fast_board, name="changed", known_hosts=str(other))
    assert "CHANGED" in message and str(other) in message and "Refusing" in message


def test_unknown_host_key_is_refused(ssh_lab, fast_board, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(DeviceError, match="not in .*known_hosts; refusing"):
        SshDevice(ssh_lab.spec(fast_board, name="unknown", known_hosts=str(empty))).connect()


def test_second_run_uploads_nothing(ssh_lab, fast_board, tmp_path):
    model = matmul_chain(tmp_path / "cache.onnx", 200, seed=7)  # content new to the board
    with SshDevice(ssh_lab.spec(fast_board)) as first:
        first.run(run_spec(first.deploy(model)))
        assert first.link.bytes_uploaded >= model.stat().st_size
    with SshDevice(ssh_lab.spec(fast_board)) as second:
        second.run(run_spec(second.deploy(model)))
        # The runner and the model are already there, by content: only the run spec is sent.
        assert second.link.bytes_uploaded == 0 and second.link.files_uploaded == 0
        assert 0 < second.link.spec_bytes_uploaded < 1000


def test_model_name_with_spaces_and_shell_metacharacters(ssh_lab, fast_board, tmp_path):
    canary = fast_board.home / "pwned"
    name = f"my model; touch {canary} $(touch {canary}) `touch {canary}` 'q\" & |.onnx"
    model = matmul_chain(tmp_path / name, 32)
    with SshDevice(ssh_lab.spec(fast_board)) as device:
        handle = device.deploy(model)
        raw = device.run(run_spec(handle))
    assert raw["ok"]
    assert shlex.quote(handle) == handle  # the board's name is the content hash
    assert not canary.exists()


def test_board_dropping_mid_run_reconnects_and_retries(ssh_lab, make_board, tiny_onnx):
    board = make_board("drop")
    with _measuring(ssh_lab, board, tiny_onnx, 30.0, retry_wait_s=1.0) as (device, run):
        ssh_lab.kill_board(board)          # sshd, the session and the runner die at once
        ssh_lab.start_sshd(board)          # the board comes back
        # The retried attempt ran the full 30 s loop again: let it; no wall-clock assert.
        raw = run.outcome()
        assert isinstance(raw, dict) and raw["ok"], raw
        assert len(device.attempts) == 1 and "dropped" in device.attempts[0][1]


def test_the_runner_orphaned_by_a_dropped_link_is_stopped_before_the_retry(ssh_lab, make_board, tiny_onnx):
    board = make_board("orphan")
    with _measuring(ssh_lab, board, tiny_onnx, 8.0, retry_wait_s=0.5) as (device, run):
        orphan = run.runner
        # Frozen, so it is still there when the retry looks for it, however long the
        # reconnect takes on a loaded machine (running, its 8 s loop ended by itself first).
        os.kill(orphan, signal.SIGSTOP)
        ssh_lab.drop_link(board)           # sshd dies; the runner lives on, orphaned
        assert _alive(orphan)
        ssh_lab.start_sshd(board)
        retry = _wait_for_runner(board, other_than=orphan)
        assert not _alive(orphan)      # stopped before the retry started
        raw = run.outcome()
        assert isinstance(raw, dict) and raw["ok"], raw
        assert device.stale_killed == 1 and retry != orphan


def test_board_that_stays_down_fails_that_measurement_with_the_reason(ssh_lab, make_board, tiny_onnx):
    board = make_board("gone")
    with _measuring(ssh_lab, board, tiny_onnx, 30.0, retry_wait_s=0.2) as (_device, run):
        ssh_lab.kill_board(board)
        err = run.outcome()
        assert isinstance(err, DeviceError) and not isinstance(err, BoardLost)
        assert "failed after 3 attempts" in str(err) and "cannot connect" in str(err)


def test_runner_killed_by_the_oom_killer(ssh_lab, make_board, onnx_20mb):
    board = make_board("oom", memory_mb=50)
    with SshDevice(ssh_lab.spec(board)) as device:
        handle = device.deploy(onnx_20mb)
        with pytest.raises(RunnerError) as err:
            device.run(run_spec(handle))
    assert err.value.error_type == "Killed"
    assert "OOM killer" in str(err.value) and "137" in str(err.value)


def test_full_disk_on_the_board(ssh_lab, make_board, onnx_20mb):
    board = make_board("full", disk_kb=2048)
    with SshDevice(ssh_lab.spec(board)) as device:
        with pytest.raises(NoSpace) as err:
            device.deploy(onnx_20mb)
        assert not list((board.tmpfs / "work" / "blobs").iterdir())  # no partial file left
    assert f"no space left on the board at {board.tmpfs / 'work' / 'blobs'}" in str(err.value)


def test_board_missing_a_runtime(ssh_lab, old_board, tiny_onnx):
    spec = ssh_lab.spec(old_board)
    report = check_board(spec, [tiny_onnx])
    facts = report["facts"]
    assert facts["numpy"].startswith("1.")                 # the older image
    assert "version" in facts["runtimes"]["tflite_runtime"]
    verdict = report["variants"][0]
    assert not verdict["ok"] and "onnxruntime" in verdict["reason"]
    reason = spec.capabilities.lacks(runtime="onnxruntime")
    assert reason and "tflite_runtime" in reason             # what a suite skips with
    with SshDevice(spec) as device:
        with pytest.raises(RunnerError) as err:
            device.run(run_spec(device.deploy(tiny_onnx)))
    assert err.value.error_type == "RuntimeMissing"


def test_throttled_board_is_throttled(ssh_lab, slow_board, tiny_onnx):
    cpu_stat = slow_board.cgroups[0] / "cpu.stat"
    before = _throttled(cpu_stat)
    with SshDevice(ssh_lab.spec(slow_board)) as device:
        raw = device.run(run_spec(device.deploy(tiny_onnx), min_duration_s=0.5))
    assert raw["ok"]
    assert _throttled(cpu_stat) > before  # the quota really bit (no wall-clock assert)


def test_check_reports_the_board(ssh_lab, fast_board, tiny_onnx, tmp_path):
    report = check_board(ssh_lab.spec(fast_board), [tiny_onnx, tmp_path / "x.tflite"])
    f = report["facts"]
    for key in ("os", "cpu", "mem_total_kb", "python", "numpy", "runtimes"):
        assert f[key], key
    assert "CPUExecutionProvider" in f["runtimes"]["onnxruntime"]["providers"]
    assert [v["ok"] for v in report["variants"]] == [True, True]


def test_clean_removes_the_work_directory(ssh_lab, make_board, tiny_onnx):
    board = make_board("clean")
    spec = ssh_lab.spec(board)
    with SshDevice(spec) as device:
        device.deploy(tiny_onnx)
        workdir = device.workdir
    done = clean_board(spec)
    assert done["workdir"] == workdir and done["freed_bytes"] > 0
    assert not (board.home / ".cache" / "edge-harness").exists()
    assert clean_board(spec)["freed_bytes"] == 0  # already gone: nothing to do


def test_clean_refuses_a_directory_the_harness_did_not_make(ssh_lab, make_board):
    board = make_board("cleanguard")
    keep = board.home / "data" / "precious"
    keep.mkdir(parents=True)
    (keep / "file").write_text("not the harness's")
    spec = ssh_lab.spec(board, workdir=str(keep))
    with pytest.raises(DeviceError, match="not a harness work directory"):
        clean_board(spec)
    assert (keep / "file").exists()


def test_jump_host(ssh_lab, fast_board, tiny_onnx):
    # The board is its own jump host: the hop is real (direct-tcpip through its sshd).
    jump = f"{fast_board.user}@{fast_board.address}:{fast_board.port}"
    with SshDevice(ssh_lab.spec(fast_board, name="viajump", jump=jump)) as device:
        assert device.run(run_spec(device.deploy(tiny_onnx)))["ok"]


def test_connect_timeout(ssh_lab, fast_board):
    absent = fast_board.address.rsplit(".", 1)[0] + ".77"  # in the test subnet, nobody there
    with pytest.raises(BoardLost, match="cannot connect"):
        SshDevice(ssh_lab.spec(fast_board, name="absent", host=absent, connect_timeout_s=1.0)).connect()


def test_password_login_from_an_environment_variable(ssh_lab, make_board, tiny_onnx, caplog, monkeypatch):
    secret = "pw-Zq81;$(x)"
    board = make_board("pw", password=secret)
    monkeypatch.setenv("HARNESS_TEST_BOARD_PW", secret)
    caplog.set_level("DEBUG")
    spec = ssh_lab.spec(board, key_file=None, password_env="HARNESS_TEST_BOARD_PW")
    assert "key_file" not in spec.options
    with SshDevice(spec) as device:
        assert device.run(run_spec(device.deploy(tiny_onnx)))["ok"]
    assert secret not in caplog.text and secret not in str(spec.public())
    monkeypatch.setenv("HARNESS_TEST_BOARD_PW", "wrong")
    with pytest.raises(DeviceError, match="authentication as .* failed") as err:
        SshDevice(spec).connect()
    assert "wrong" not in str(err.value)


def test_no_secret_in_logs_or_public_options(ssh_lab, fast_board, tiny_onnx, caplog, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_PASSPHRASE", "s3cr3t-passphrase")
    spec = ssh_lab.spec(fast_board, name="secretive", passphrase_env="HARNESS_TEST_PASSPHRASE")
    caplog.set_level("DEBUG")
    with SshDevice(spec) as device:
        device.run(run_spec(device.deploy(tiny_onnx)))
    key = ssh_lab.client_key.read_text().splitlines()[1]
    public = str(spec.public())
    for secret in ("s3cr3t-passphrase", key):
        assert secret not in caplog.text and secret not in public
    assert "key_file" not in public and "passphrase_env" not in public


# ----------------------------------------------------------------- helpers


class _BackgroundRun:
    """A long measurement in a thread, so the test can break the board meanwhile; made
    once the runner runs on the board (`runner`: its pid)."""

    def __init__(self, device, board, handle, seconds):
        self._result = {}
        self._worker = threading.Thread(target=self._measure, args=(device, handle, seconds))
        self._worker.start()
        self.runner = _wait_for_runner(board)

    def _measure(self, device, handle, seconds):
        try:
            self._result["raw"] = device.run(run_spec(handle, min_duration_s=seconds, max_iterations=10**9))
        except Exception as exc:  # handed to the test thread
            self._result["raw"] = exc

    def outcome(self):
        """The runner's document or the exception the run ended with."""
        self._worker.join(timeout=120)
        assert not self._worker.is_alive(), "the measurement did not end within 120 s"
        return self._result["raw"]


@contextlib.contextmanager
def _measuring(ssh_lab, board, model, seconds, retry_wait_s):
    """A device on the board (two retries) running a `seconds` measurement of `model` in the
    background; yields (device, run) once the runner runs; closes the device after."""
    device = SshDevice(ssh_lab.spec(board, retries=2, retry_wait_s=retry_wait_s))
    device.connect()
    try:
        yield device, _BackgroundRun(device, board, device.deploy(model), seconds)
    finally:
        device.close()


def _wait_for_runner(board, timeout=60, other_than=None):
    """The pid of the runner on the board (its cmdline names runner-*.py), once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in board.pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if pid != other_than and any(b"/runner-" in a for a in argv) and argv[0] != b"sh":
                time.sleep(0.5)  # let it get into the timed loop
                return pid
        time.sleep(0.1)
    raise AssertionError("the runner never started on the board")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _throttled(cpu_stat):
    for line in cpu_stat.read_text().splitlines():
        if line.startswith("nr_throttled"):
            return int(line.split()[1])
    return 0


def test_cli_devices_check_and_clean(ssh_lab, old_board, capsys):
    from harness.cli import main

    ssh_lab.spec(old_board)
    common = ["--devices-dir", str(ssh_lab.root / "devices"),
              "--models-dir", str(MODELS)]
    assert main(common + ["devices", "check", old_board.name]) == 0
    out = capsys.readouterr().out
    assert "numpy    1." in out and "tflite_runtime 2.14" in out
    assert "ok  digits-mlp/tflite-int8" in out and "NO  digits-mlp/fp32: onnxruntime:" in out
    assert main(common + ["devices", "clean", old_board.name]) == 0
    assert "removed" in capsys.readouterr().out
    assert not (old_board.home / ".cache" / "edge-harness").exists()


JETSON_FILES = {
    "/etc": {"nv_tegra_release": "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, "
                                 "EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n"},
    # PATH on the board has /usr/local/bin first: stand-ins for the Jetson tools.
    "/usr/local/bin": {
        "nvpmodel": "#!/bin/sh\n[ \"$1\" = -q ] && printf 'NV Power Mode: 15W\\n0\\n'\n",
        "dpkg-query": "#!/bin/sh\nfor a; do [ \"$a\" = nvidia-jetpack ] && { printf '6.2.1+b38'; exit 0; }; done\n"
                      "exec /usr/bin/dpkg-query \"$@\"\n",
    },
}


def test_jetson_facts_reach_provenance(ssh_lab, make_board, tiny_onnx):
    board = make_board("jetson", files=JETSON_FILES)
    spec = ssh_lab.spec(board, board="jetson")
    with SshDevice(spec) as device:
        assert device.run(run_spec(device.deploy(tiny_onnx)))["ok"]
        info = device.info()
    assert info["board"] == "jetson"
    assert info["l4t"]["l4t"] == "36.4.3" and info["jetpack"] == "6.2.1+b38"
    assert info["nvpmodel"] == {"name": "15W", "id": 0}
    assert not any("l4t" in w for w in check_board(spec)["warnings"])
    # The same host, declared a Jetson, without the files: check says what is missing.
    plain = ssh_lab.spec(ssh_lab.boards["fast"] if "fast" in ssh_lab.boards else make_board("plain"),
                     name="notjetson", board="jetson")
    assert any("reports no l4t" in w for w in check_board(plain)["warnings"])


def test_check_warns_where_the_yaml_and_the_board_disagree(ssh_lab, old_board, fast_board):
    import dataclasses

    from harness.inventory import Capabilities

    spec = dataclasses.replace(ssh_lab.spec(old_board), capabilities=Capabilities(
        runtimes=("onnxruntime", "tflite_runtime"), providers=("CUDAExecutionProvider",)))
    warnings = check_board(spec)["warnings"]
    assert any("declares onnxruntime, which the board lacks" in w for w in warnings), warnings
    spec = dataclasses.replace(ssh_lab.spec(fast_board), capabilities=Capabilities(
        runtimes=("onnxruntime",), providers=("CUDAExecutionProvider",)))
    assert any("declares CUDAExecutionProvider; this onnxruntime offers" in w for w in check_board(spec)["warnings"])


def test_a_run_past_timeout_s_fails_and_leaves_no_runner(ssh_lab, make_board, tiny_onnx):
    import dataclasses

    board = make_board("slowrun")
    spec = dataclasses.replace(ssh_lab.spec(board), timeout_s=2.0)
    with SshDevice(spec) as device:
        with pytest.raises(DeviceError, match="the runner did not finish within 2 s"):
            device.run(run_spec(device.deploy(tiny_onnx), min_duration_s=60.0, max_iterations=10**9))
        assert device.stale_killed == 1
    deadline = time.monotonic() + 10  # SIGKILL sent; the exit is the kernel's to finish
    while any(_is_runner(pid) for pid in board.pids()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_is_runner(pid) for pid in board.pids())


def _is_runner(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return _alive(pid) and argv[0] != b"sh" and any(b"/runner-" in a for a in argv)


def test_on_board_power_meter_over_the_boards_connection(ssh_lab, make_board, tiny_onnx):
    """tegrastats (the stand-in from tests/fakes, 5 W) runs ON the board, streamed back
    over the device's own SSH connection, and is integrated over the runner's window."""
    from pathlib import Path

    from harness.power import measure_with_meters, min_window_s, open_meters

    fake = (TESTS / "fakes" / "tegrastats").read_text()
    board = make_board("tegra", files={"/usr/local/bin": {"tegrastats": fake}})
    # Lines are stamped on arrival, and a silence of 3 periods is a gap (no energy per
    # inference): at 20 ms a loaded host's scheduling alone made one; 100 ms tolerates 0.3 s.
    spec = ssh_lab.spec(board, board="jetson", top={"power": [{"meter": "tegrastats", "interval_ms": 100}]})
    with SshDevice(spec) as device:
        handle = device.deploy(tiny_onnx)
        meters = open_meters(spec, device)
        window = min_window_s(meters)  # enough samples at that rate
        try:
            raw, energies = measure_with_meters(
                meters, lambda: device.run(run_spec(handle, min_duration_s=window)), idle_s=0.3)
        finally:
            for meter in meters:
                meter.close()
    assert raw["ok"]
    energy = energies[0]
    assert energy["energy_j"] > 0 and energy["energy_per_inference_j"] > 0
    assert 4.5 < energy["avg_power_w"] < 5.5, energy   # the fake's default input rail: 5 W
    assert not any(b"tegrastats" in Path(f"/proc/{p}/cmdline").read_bytes()
                   for p in board.pids() if Path(f"/proc/{p}/cmdline").exists())


def test_hashed_known_hosts_entries_work(ssh_lab, fast_board, tmp_path):
    import subprocess

    hashed = tmp_path / "known_hosts"
    hashed.write_text(fast_board.host_key_line + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert fast_board.address not in hashed.read_text()  # OpenSSH's HashKnownHosts format
    with SshDevice(ssh_lab.spec(fast_board, name="hashed", known_hosts=str(hashed))) as device:
        assert device.link.alive
