"""The local kind drives the runner exactly as a board does: a fresh process per run."""
import json

import pytest

from harness.devices import open_device
from harness.errors import DeviceError, RunnerError
from harness.inventory import Inventory, parse_device


def local(tmp_path, **extra):
    data = {"kind": "local", **extra}
    return open_device(parse_device(data, tmp_path / "local.yaml", "local"))


def test_each_run_is_a_fresh_process(tmp_path, identity_model):
    with local(tmp_path) as dev:
        handle = dev.deploy(identity_model)
        spec = {"model": handle, "min_iterations": 1, "min_duration_s": 0}
        a, b = dev.run(spec), dev.run(spec)
    # A fresh interpreter each time: the import phase is paid by both runs.
    assert a["timings_ms"]["import"] > 0 and b["timings_ms"]["import"] > 0
    assert a["memory"]["rss_kb"]["start"] < a["memory"]["peak_rss_kb"]


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


def test_public_spec_has_no_secret_fields(repo):
    spec = Inventory(repo / "devices").get("local")
    text = json.dumps(spec.public())
    assert "local" in text and "password" not in text


def test_thread_pools_follow_the_settings_not_the_controller(monkeypatch):
    from harness.devices.local import runner_env

    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    env = runner_env(2)
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
