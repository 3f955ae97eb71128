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
import yaml

from harness import lease
from harness.errors import ConfigError, DeviceError
from harness.inventory import Inventory, load_device_file
from harness.store import Store
from inner_pytest import inner_env, pytest_argv
from paths import ROOT

QUICK = ["--min-duration", "0.05", "--warmup", "2", "--report", "", "-q", "-rs",
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
    assert [r["device"] for r in store.leases.all()] == ["some-ssh-board"]
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


def test_place_filters_and_holders_read_as_labgrid_schedules():
    from harness.devices.labgrid import holders, matching

    places = [{"name": "a", "tags": {"board": "rpi5", "site": "b2"}, "acquired": "h1/alice", "reservation": None},
              {"name": "b", "tags": {"board": "rpi5"}, "acquired": None, "reservation": "T1"},
              {"name": "c", "tags": {"board": "jetson"}, "acquired": None, "reservation": None}]
    assert [p["name"] for p in matching(places, {"board": "rpi5"})] == ["a", "b"]
    assert [p["name"] for p in matching(places, {"board": "rpi5", "site": "b2"})] == ["a"]
    assert [p["name"] for p in matching(places, {"name": "c"})] == ["c"]  # labgrid's name= filter
    text = holders(matching(places, {"board": "rpi5"}), [{"token": "T1", "owner": "h2/bob", "prio": 5.0}], "h1/me")
    assert text == "a held by h1/alice, b reserved by h2/bob (priority 5)"
    assert holders([], [], "me") == "no such place on the coordinator"


def test_a_place_lock_tells_a_live_run_from_a_killed_one(tmp_path, monkeypatch):
    """The lock file is flock()ed by the run that holds the place; the kernel drops the lock
    when that process dies, however it dies."""
    from harness.devices.labgrid import PlaceLock

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lock = PlaceLock("127.0.0.1:20408", "../rpi5-a")
    assert lock.path.parent.parent == tmp_path / "edge-harness" / "labgrid"  # a name never leaves its directory
    assert not lock.left_by_killed_run()  # no file: acquired by hand, not by a harness run
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; from harness.devices.labgrid import PlaceLock\n"
        "lock = PlaceLock('127.0.0.1:20408', '../rpi5-a'); assert lock.take(); print('held', flush=True)\n"
        "time.sleep(600)")], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not PlaceLock("127.0.0.1:20408", "../rpi5-a").left_by_killed_run()  # a live run holds it
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert lock.path.exists()  # SIGKILL: nobody removed it
    assert PlaceLock("127.0.0.1:20408", "../rpi5-a").left_by_killed_run()
    assert not lock.path.exists()


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
    argv = pytest_argv(ROOT / "suites", "--devices-dir", devices_dir, "--store", store, "--device", device,
                       *QUICK, *extra)
    for v in variants:
        argv += ["--variants", v]
    return argv


def _run(lab, argv, **kw):
    return subprocess.run(argv, cwd=ROOT, env=inner_env(lab.env()), capture_output=True, text=True, timeout=900,
                          **kw)


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


def _places_measured(store) -> dict:
    rows = Store(store).measurements()
    return {m.variant_id: m.provenance["device_info"].get("place") for m in rows}


def test_two_places_with_one_tag_share_the_suites_under_xdist(lg_lab, make_board, tmp_path):
    boards = [make_board("lgpool"), make_board("lgpool")]
    for i, board in enumerate(boards):
        lg_lab.add_place(f"lg-pool-{i}", board, {"board": "pool"})
    devices = tmp_path / "devices"
    lg_lab.device_yaml("pool", boards[0], devices_dir=devices, tags={"board": "pool"})
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    # Both places are held by hand until BOTH workers queue a reservation: a worker that
    # started first (the other still importing on a loaded machine) could otherwise measure
    # its variant and release its place before the other reserved, which then got the same
    # place. Released together, the two waiting reservations get one place each.
    for i in range(len(boards)):
        lg_lab.client("-p", f"lg-pool-{i}", "acquire", user="alice")
    child = subprocess.Popen(_suites(lg_lab, devices, store, "pool", "-n", "2"), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             env={**lg_lab.env(), "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 300
        while lg_lab.client("reservations").count("state: waiting") < 2:
            assert time.monotonic() < deadline and child.poll() is None, "two workers never both waited"
            time.sleep(0.2)
        for i in range(len(boards)):
            lg_lab.client("-p", f"lg-pool-{i}", "release", user="alice")
        out, _ = child.communicate(timeout=900)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == 0, out[-4000:]
    rows = Store(store).measurements()
    assert {m.device for m in rows} == {"pool"} and len({m.run_id for m in rows}) == 1
    # each worker reserved its own place; every row says which place measured it
    assert {m.provenance["device_info"]["place"] for m in rows} == {"lg-pool-0", "lg-pool-1"}, out[-3000:]
    # a variant's suites stay on one worker: each variant is measured once, on one place
    assert sorted(m.variant_id for m in rows) == ["digits-mlp/fp16", "digits-mlp/fp32"]
    hosts = {m.provenance["device_info"]["place"]: m.provenance["device_info"]["host"] for m in rows}
    assert hosts == {"lg-pool-0": boards[0].address, "lg-pool-1": boards[1].address}
    assert not Store(store).leases.all()  # labgrid locked the boards, not the store
    assert lg_lab.acquired_by("lg-pool-0") is None and lg_lab.acquired_by("lg-pool-1") is None


def test_a_place_held_by_someone_else_is_waited_for_then_measured(lg_lab, make_board, tmp_path):
    board = make_board("lgheld")
    lg_lab.add_place("lg-held", board, {"board": "held"})
    lg_lab.client("-p", "lg-held", "acquire", user="alice")
    devices = tmp_path / "devices"
    lg_lab.device_yaml("held", board, devices_dir=devices, tags={"board": "held"})
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    child = subprocess.Popen(_suites(lg_lab, devices, store, "held", "-s"), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True,  # no terminal
                             env=inner_env(lg_lab.env()))
    try:
        deadline = time.monotonic() + 120
        while "state: waiting" not in lg_lab.client("reservations"):  # the run queued behind alice
            assert time.monotonic() < deadline and child.poll() is None, "the run never waited"
            time.sleep(0.2)
        assert lg_lab.acquired_by("lg-held").endswith("/alice")
        lg_lab.client("-p", "lg-held", "release", user="alice")
        out, _ = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, out[-4000:]
    assert "harness: held: waiting for a place with board=held" in out and "lg-held held by" in out and "/alice" in out
    assert set(_places_measured(store).values()) == {"lg-held"}


def test_a_reservation_that_times_out_names_the_place_and_its_holder(lg_lab, make_board, tmp_path):
    board = make_board("lgbusy")
    lg_lab.add_place("lg-busy", board, {"board": "busy"})
    lg_lab.client("-p", "lg-busy", "acquire", user="bob")
    devices = tmp_path / "devices"
    lg_lab.device_yaml("busy", board, devices_dir=devices, tags={"board": "busy"}, reserve_timeout_s=1.0)
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    try:
        proc = _run(lg_lab, _suites(lg_lab, devices, store, "busy", "-s"), start_new_session=True)
    finally:
        lg_lab.client("-p", "lg-busy", "release", user="bob")
    out = proc.stdout + proc.stderr
    assert "(labgrid.reserve_timeout_s=1) for a place with board=busy on" in out, out[-3000:]
    assert "in vain: lg-busy held by" in out and "/bob" in out
    assert not Store(store).measurements()
    assert proc.returncode == 0 and " skipped" in out and "passed" not in out and "failed" not in out
    assert out.count("waiting for a place with board=busy") == 1  # the first test waited, the rest skip at once
    assert "state: waiting" not in lg_lab.client("reservations")     # the reservation was cancelled


def test_a_killed_run_leaves_its_place_to_the_next_run_of_the_same_user(lg_lab, make_board, tmp_path):
    board = make_board("lgkill")
    lg_lab.add_place("lg-kill", board, {"board": "kill"})
    devices = tmp_path / "devices"
    lg_lab.device_yaml("kill", board, devices_dir=devices, tags={"board": "kill"}, reserve_timeout_s=20.0)
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    child = subprocess.Popen(_suites(lg_lab, devices, store, "kill", variants=("digits-mlp/*",)), cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                             env=inner_env(lg_lab.env()))
    try:
        deadline = time.monotonic() + 300
        while lg_lab.acquired_by("lg-kill") is None:
            assert time.monotonic() < deadline and child.poll() is None, "the run never acquired the place"
            time.sleep(0.2)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the run and its labgrid bridge, at once
        child.wait(timeout=30)
    holder = lg_lab.acquired_by("lg-kill")
    assert holder is not None  # nobody released it: labgrid keeps a place until told
    proc = _run(lg_lab, _suites(lg_lab, devices, f"sqlite:///{tmp_path / 'next.sqlite'}", "kill", "-s"),
                start_new_session=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "released labgrid place lg-kill, left acquired by a killed run" in out
    assert set(_places_measured(f"sqlite:///{tmp_path / 'next.sqlite'}").values()) == {"lg-kill"}
    assert lg_lab.acquired_by("lg-kill") is None


def test_a_place_acquired_by_hand_is_not_taken_for_a_killed_run(lg_lab, make_board, tmp_path):
    """Same user, no lock file: someone ran `labgrid-client acquire`; the harness waits, never steals."""
    board = make_board("lghand")
    lg_lab.add_place("lg-hand", board, {"board": "hand"})
    lg_lab.client("-p", "lg-hand", "acquire")  # this very user, by hand
    devices = tmp_path / "devices"
    lg_lab.device_yaml("hand", board, devices_dir=devices, tags={"board": "hand"}, reserve_timeout_s=0.5)
    try:
        proc = _run(lg_lab, _suites(lg_lab, devices, f"sqlite:///{tmp_path / 's.sqlite'}", "hand"))
        assert "in vain: lg-hand held by" in proc.stdout and "(this user)" in proc.stdout
        assert lg_lab.acquired_by("lg-hand") is not None
    finally:
        lg_lab.client("-p", "lg-hand", "release")


def test_a_board_whose_host_key_changed_behind_the_place_is_refused(lg_lab, ssh_lab, make_board, tmp_path):
    board = make_board("lgkey")
    lg_lab.add_place("lg-key", board, {"board": "key"})
    # the place now reaches a board whose key is not the one known_hosts has for it
    known = Path(ssh_lab.known_hosts)
    forged = tmp_path / "forged"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(forged)], check=True)
    original = known.read_text()
    fake = open(f"{forged}.pub").read().split()
    known.write_text(original.replace(board.host_key_line, f"[{board.address}]:2222 {fake[0]} {fake[1]}"))
    devices = tmp_path / "devices"
    lg_lab.device_yaml("key", board, devices_dir=devices, tags={"board": "key"}, reserve_timeout_s=20.0)
    try:
        proc = _run(lg_lab, _suites(lg_lab, devices, f"sqlite:///{tmp_path / 's.sqlite'}", "key"))
    finally:
        known.write_text(original)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "has CHANGED" in out and "Refusing to connect" in out, out[-3000:]
    # the place is given back at once: every test of the run gets it again and is refused
    # (none waits for a place its own run still holds)
    assert "in vain" not in out and " passed" not in out and " skipped" not in out, out[-3000:]
    assert lg_lab.acquired_by("lg-key") is None


def test_harness_devices_lists_the_coordinators_places_and_holders(lg_lab, make_board, tmp_path):
    board = make_board("lglist")
    lg_lab.add_place("lg-list-a", board, {"board": "list", "site": "b2"})
    lg_lab.client("-p", "lg-list-a", "acquire", user="carol")
    devices = tmp_path / "devices"
    lg_lab.device_yaml("listed", board, devices_dir=devices, tags={"board": "list"})
    try:
        proc = _run(lg_lab, [sys.executable, "-m", "harness.cli", "--devices-dir", str(devices), "devices"])
    finally:
        lg_lab.client("-p", "lg-list-a", "release", user="carol")
    assert "listed" in proc.stdout and "labgrid" in proc.stdout, proc.stdout + proc.stderr
    assert "place lg-list-a  [board=list site=b2]  held by" in proc.stdout and "/carol" in proc.stdout


class Outlet:
    """A switched outlet speaking labgrid's `simplerest` power protocol (GET .../{index}/{value}):
    the stand-in for a PDU, which cannot exist here. Off kills the board's sshd, on starts it."""

    def __init__(self, ssh_lab, board):
        import http.server
        import threading

        outlet = self
        self.switched: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                value = self.path.rstrip("/").rsplit("/", 1)[-1]
                if value in ("0", "1"):
                    outlet.switched.append(value)
                    if value == "0":
                        ssh_lab.kill_board(board)
                    else:
                        ssh_lab.start_sshd(board)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"1")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/relay/{{index}}/{{value}}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_a_board_that_stopped_answering_is_power_cycled_through_the_place(lg_lab, ssh_lab, make_board, tmp_path):
    board = make_board("lgpower")
    outlet = Outlet(ssh_lab, board)
    try:
        lg_lab.add_place("lg-power", board, {"board": "power"},
                         extra={"NetworkPowerPort": {"model": "simplerest", "host": outlet.url, "index": 0}})
        ssh_lab.kill_board(board)  # hung: no SSH answers until its power is cycled
        devices = tmp_path / "devices"
        lg_lab.device_yaml("power", board, devices_dir=devices, tags={"board": "power"},
                           power={"off_s": 0.2, "boot_wait_s": 0.5})
        store = f"sqlite:///{tmp_path / 's.sqlite'}"
        proc = _run(lg_lab, _suites(lg_lab, devices, store, "power", "-s"), start_new_session=True)
    finally:
        outlet.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert outlet.switched == ["0", "1"], out[-3000:]  # one cycle: off, then on
    assert "power-cycling it through NetworkPowerPort" in out
    rows = Store(store).measurements()
    assert rows and {m.provenance["device_info"]["power_cycles"] for m in rows} == {1}


def _default_sigint():
    # A suite started as a background job (CI scripts, `cmd &`) inherits SIGINT ignored, and a
    # Python started so never raises KeyboardInterrupt: give the inner run a terminal's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_releases_the_place(lg_lab, make_board, tmp_path):
    board = make_board("lgint")
    lg_lab.add_place("lg-int", board, {"board": "int"})
    devices = tmp_path / "devices"
    path = lg_lab.device_yaml("int", board, devices_dir=devices, tags={"board": "int"})
    # A run far longer than any wait here (10 s a round, no iteration cap to end it sooner): it
    # is still measuring whenever the Ctrl-C arrives, however slowly a loaded machine gets there.
    data = yaml.safe_load(path.read_text())
    data["settings"]["max_iterations"] = 10 ** 9
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    child = subprocess.Popen(_suites(lg_lab, devices, f"sqlite:///{tmp_path / 's.sqlite'}", "int",
                                     "--min-duration", "30", variants=("digits-mlp/*",)), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             env=inner_env(lg_lab.env()), preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 300
        while lg_lab.acquired_by("lg-int") is None:
            assert time.monotonic() < deadline and child.poll() is None, "the run never acquired the place"
            time.sleep(0.2)
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole foreground group
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 2 and "KeyboardInterrupt" in out, out[-3000:]
    assert lg_lab.acquired_by("lg-int") is None
    assert "board=int" not in lg_lab.client("reservations")  # and its reservation is gone


def test_a_network_serial_port_becomes_the_serial_kinds_port(lg_lab, tmp_path, monkeypatch):
    """An MCU place: its NetworkSerialPort (raw TCP) is the serial kind's socket:// port. The
    DUT is the MLPerf Tiny stand-in of tests/test_mcu_dut.py on a TCP socket."""
    import yaml

    from serial_peers import FakeDut

    from harness.devices import open_device

    dut = FakeDut()
    dut._opened.set()
    port = int(dut.url.rsplit(":", 1)[1])
    exporter = lg_lab.export_group("mcu1", {"NetworkSerialPort": {
        "host": "127.0.0.1", "port": port, "speed": 115200, "protocol": "raw"}})
    lg_lab.client("-p", "lg-mcu", "create")
    lg_lab.client("-p", "lg-mcu", "add-match", f"{exporter}/mcu1/*")
    lg_lab.client("-p", "lg-mcu", "set-tags", "board=mcu")
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "mcu.yaml").write_text(yaml.safe_dump({
        "kind": "labgrid", "capabilities": {"runtimes": ["mcu"]},
        "labgrid": {"coordinator": lg_lab.coordinator, "tags": {"board": "mcu"}, "poll_s": 0.2,
                    "serial": {"firmware": "prebuilt", "model": {"variant": "digits-cnn/tflite-int8"},
                               "timeout_s": 2.0, "cache_dir": str(tmp_path / "cache")}}}))
    for key in ("XDG_CACHE_HOME", "HARNESS_LABGRID_PYTHON"):
        monkeypatch.setenv(key, lg_lab.env()[key])
    device = open_device(Inventory(devices).get("mcu"))
    device.connect()
    try:
        handle = device.deploy(ROOT / "models" / "digits_cnn_int8.tflite")
        raw = device.run({"model": handle, "warmup": 2, "min_iterations": 10, "min_duration_s": 0.0})
        info = device.info()
    finally:
        device.close()
        dut.close()
    assert handle == "prebuilt:digits-cnn/tflite-int8" and raw["ok"] and raw["latencies_ns"] == [10_000.0] * 5
    assert info["place"] == "lg-mcu" and info["inner_kind"] == "serial"
    assert device.spec.options["serial"]["firmware"] == "prebuilt"
    assert lg_lab.acquired_by("lg-mcu") is None
