"""The local kind drives the runner exactly as a board does: a fresh process per run."""
import json
import sys

import pytest

from harness.devices import open_device
from harness.errors import ConfigError, DeviceError, RunnerError
from harness.inventory import Inventory, parse_device


def local(tmp_path, **extra):
    data = {"kind": "local", **extra}
    return open_device(parse_device(data, tmp_path / "local.yaml", "local"))


def test_each_run_is_a_fresh_process(tmp_path, identity_model):
    # The interpreter is a wrapper that logs its pid and execs the real one (same pid): a
    # document can only come back through a process the device started for that run.
    pids = tmp_path / "pids"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho $$ >> "{pids}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    with local(tmp_path, python=str(wrapper)) as dev:
        handle = dev.deploy(identity_model)
        spec = {"model": handle, "min_iterations": 1, "min_duration_s": 0}
        a = dev.run(spec)
        after_first = pids.read_text().split()
        b = dev.run(spec)
    started = pids.read_text().split()
    assert len(after_first) == 1 and len(started) == 2 and started[0] != started[1]
    assert a["ok"] and b["ok"]


def test_runner_failure_carries_stderr_and_type(tmp_path, identity_model):
    with local(tmp_path, python=str(tmp_path / "fake-python")) as dev:
        (tmp_path / "fake-python").write_text("#!/bin/sh\necho 'board says: numpy missing' >&2\nexit 3\n")
        (tmp_path / "fake-python").chmod(0o755)
        with pytest.raises(RunnerError) as info:
            dev.run({"model": dev.deploy(identity_model)})
    assert "board says: numpy missing" in str(info.value)
    assert "exited with 3" in str(info.value)


def test_typed_runner_error(tmp_path, identity_model):
    with local(tmp_path) as dev:
        with pytest.raises(RunnerError) as info:
            dev.run({"model": dev.deploy(identity_model), "providers": ["CUDAExecutionProvider"]})
    assert info.value.error_type == "ProviderMissing"
    assert "local: runner failed: ProviderMissing" in str(info.value)


def test_missing_interpreter_and_missing_artifact(tmp_path, identity_model):
    with local(tmp_path, python=str(tmp_path / "no-such-python")) as dev:
        with pytest.raises(DeviceError, match="cannot start the runner"):
            dev.run({"model": str(identity_model)})
        with pytest.raises(DeviceError, match="no such file"):
            dev.deploy(tmp_path / "absent.onnx")


def test_timeout_is_enforced(tmp_path, identity_model):
    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    with local(tmp_path, python=str(slow), timeout_s=1.0) as dev:
        with pytest.raises(DeviceError, match="timeout_s=1.0"):
            dev.run({"model": str(identity_model)})


def test_public_spec_has_no_secret_fields(repo, tmp_path):
    # A board with every piece of login material set, beside the repository's inventory.
    marked = parse_device({"kind": "ssh", "ssh": {
        "host": "10.0.0.9", "user": "pi", "key_file": [str(tmp_path / "KEYFILE-SECRET")],
        "password_env": "PASSWORD-ENV-SECRET", "passphrase_env": "PASSPHRASE-ENV-SECRET",
        "known_hosts": str(tmp_path / "KNOWN-HOSTS-SECRET"), "ssh_config": str(tmp_path / "CONFIG-SECRET"),
        "use_agent": False}}, tmp_path / "pi.yaml", "pi")
    assert marked.options["password_env"] == "PASSWORD-ENV-SECRET"  # it was read...
    for spec in [*Inventory(repo / "devices").all(), marked]:
        text = json.dumps(spec.public())
        assert spec.name in text and "SECRET" not in text  # ...and never published
        for field in ("key_file", "password_env", "passphrase_env", "known_hosts", "ssh_config"):
            assert field not in text, (spec.name, field)
    assert "10.0.0.9" in json.dumps(marked.public())  # where the board is may be shown
    # A local device file cannot carry one at all, and the refusal does not repeat it.
    with pytest.raises(ConfigError) as info:
        parse_device({"kind": "local", "local": {"password": "hunter2"}}, tmp_path / "l.yaml", "l")
    assert "local.password" in str(info.value) and "hunter2" not in str(info.value)


def test_thread_pools_follow_the_settings_not_the_controller(monkeypatch):
    from harness.devices.local import runner_env

    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    env = runner_env(2)
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
