"""`kind: labgrid`: boards from a real labgrid coordinator (tests/labgrid_lab.py), reached
through the real SSH test boards (tests/sshboards.py). Skipped with the reason when labgrid
or the boards cannot run here; the YAML checks run everywhere."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import lease
from harness.errors import ConfigError, DeviceError
from harness.inventory import Inventory, load_device_file
from harness.store import Store

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--min-duration", "0.05", "--warmup", "2", "--report", "", "-p", "no:cacheprovider", "-q", "-rs",
         "--lease-wait", "0"]


# ------------------------------------------------------------------ the YAML, no lab needed


def _yaml(tmp_path, name="pool", **labgrid):
    import yaml

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"kind": "labgrid", "capabilities": {"runtimes": ["onnxruntime"]},
                                    "labgrid": labgrid}))
    return path


def test_the_yaml_names_a_place_or_tags_and_leaves_the_address_to_labgrid(tmp_path):
    spec = load_device_file(_yaml(tmp_path, tags={"board": "rpi5"}, priority=5,
                                  ssh={"known_hosts": "/k", "board": "rpi"}))
    assert spec.kind == "labgrid" and spec.options["tags"] == {"board": "rpi5"}
    assert spec.public()["options"] == {"tags": {"board": "rpi5"}, "priority": 5, "ssh": {"board": "rpi"}}
    for labgrid, field in (({"tags": {"board": "x"}, "place": "a"}, "labgrid.place"),
                           ({}, "labgrid.place"),
                           ({"place": "a", "ssh": {"host": "10.0.0.1"}}, "labgrid.ssh.host"),
                           ({"place": "a", "ssh": {"port": 22}}, "labgrid.ssh.port"),
                           ({"place": "a", "ssh": {"retries": "two"}}, "labgrid.ssh.retries"),
                           ({"place": "a", "ssh": {"password": "x"}}, "labgrid.ssh.password"),
                           ({"tags": {"Board": "x"}}, "labgrid.tags"),
                           ({"tags": {"board": "a b"}}, "labgrid.tags.board"),
                           ({"place": "a", "power": {"boot_wait": 3}}, "labgrid.power.boot_wait"),
                           ({"place": "a", "palce": "b"}, "labgrid.palce")):
        with pytest.raises(ConfigError) as err:
            load_device_file(_yaml(tmp_path, "bad", **labgrid))
        assert err.value.field == field, (labgrid, str(err.value))
        assert "bad.yaml" in str(err.value)


def test_the_store_lease_defers_to_labgrid_for_labgrid_devices_only(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    load_device_file(_yaml(tmp_path, "lgpool", tags={"board": "x"}))
    manager = lease.LeaseManager(store, wait_s=0)
    manager.acquire("lgpool")          # labgrid locks it: no row in the lease table
    manager.acquire("some-ssh-board")  # any other board is still leased through the store
    assert lease.deferred("lgpool") == "labgrid" and lease.deferred("some-ssh-board") is None
    assert [r["device"] for r in store.leases()] == ["some-ssh-board"]
    other = lease.LeaseManager(store, wait_s=0, holder="other:1")
    other.acquire("lgpool")            # a second worker of the pool is not refused by the store
    with pytest.raises(lease.LeaseBusy):
        other.acquire("some-ssh-board")
    manager.release_all()


def test_without_labgrid_the_error_says_how_to_install(tmp_path, monkeypatch):
    from harness.devices import labgrid_client

    monkeypatch.setenv("HARNESS_LABGRID_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(DeviceError, match="pipx install labgrid"):
        labgrid_client.labgrid_python()


# ------------------------------------------------------------------ a real lab


@pytest.fixture(scope="module")
def lg_lab(ssh_lab):
    from labgrid_lab import LabgridLab, labgrid_python

    python, reason = labgrid_python()
    if reason:
        pytest.skip(reason)
    lab = LabgridLab(python, ssh_lab)
    try:
        yield lab
    finally:
        lab.close()


def _suites(lab, devices_dir, store, device, *extra, variants=("digits-mlp/fp32", "digits-mlp/fp16")):
    argv = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "--devices-dir", str(devices_dir),
            "--store", store, "--device", device, *QUICK, *extra]
    for v in variants:
        argv += ["--variants", v]
    return argv


def _run(lab, argv, **kw):
    return subprocess.run(argv, cwd=ROOT, env={**lab.env(), "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=900, **kw)


def test_a_free_place_becomes_an_ssh_board_and_is_released(lg_lab, make_board, tmp_path, monkeypatch):
    board = make_board("lgfree")
    lg_lab.add_place("lg-free", board, {"board": "free"})
    devices = tmp_path / "devices"
    lg_lab.device_yaml("free", board, devices_dir=devices, tags={"board": "free"})
    for key in ("XDG_CACHE_HOME", "HARNESS_LABGRID_PYTHON"):
        monkeypatch.setenv(key, lg_lab.env()[key])
    from harness.devices import open_device

    device = open_device(Inventory(devices).get("free"))
    device.connect()
    try:
        assert lg_lab.acquired_by("lg-free") == device.user
        info = device.info()
        assert info["kind"] == "labgrid" and info["place"] == "lg-free" and info["inner_kind"] == "ssh"
        assert info["place_tags"] == {"board": "free"} and info["host"] == board.address
    finally:
        device.close()
    assert lg_lab.acquired_by("lg-free") is None
    assert "free" not in lg_lab.client("reservations")
