"""The ssh kind without a board: quoting, YAML validation, ~/.ssh/config, probe parsing,
and the retry/exit-code logic against a fake link. Runs anywhere, no root."""
from __future__ import annotations

import shlex

import pytest

from harness.ondevice import probe
from harness.devices.ssh import SshDevice
from harness.devices.sshlink import BoardLost, Completed, remote_argv, resolve
from harness.errors import ConfigError, DeviceError, RunnerError
from harness.inventory import load_device_file, parse_device
from paths import ROOT



def test_remote_argv_quotes_every_element():
    argv = ["python3", "/w/runner.py", "my model; rm -rf ~ $(id) `id` 'x' \"y\" | & > <", ""]
    assert shlex.split(remote_argv(argv)) == argv


def ssh_device(**ssh):
    section = {"host": "10.0.0.9", "ssh_config": ""}
    section.update(ssh)
    return parse_device({"kind": "ssh", "ssh": section}, "devices/board.yaml", "board")


def test_yaml_errors_name_file_and_field():
    with pytest.raises(ConfigError, match=r"devices/board.yaml: ssh.port: expected an integer in 1..65535, got 70000"):
        ssh_device(port=70000)
    with pytest.raises(ConfigError, match=r"ssh.board: expected one of generic, rpi, jetson"):
        ssh_device(board="nano")
    with pytest.raises(ConfigError, match=r"ssh.hots: .*did you mean 'host'"):
        parse_device({"kind": "ssh", "ssh": {"hots": "x", "host": "y"}}, "devices/board.yaml", "board")
    with pytest.raises(ConfigError, match=r"ssh.jump: expected one jump host"):
        ssh_device(jump="a@b:twenty")
    with pytest.raises(ConfigError, match=r"ssh.host: .*missing"):
        parse_device({"kind": "ssh", "ssh": {"port": 22}}, "devices/board.yaml", "board")


def test_a_literal_password_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as err:
        ssh_device(password="hunter2")
    assert "hunter2" not in str(err.value) and "password_env" in str(err.value)


def test_public_options_drop_login_material():
    spec = ssh_device(user="pi", key_file="~/.ssh/lab", password_env="PW", passphrase_env="PP",
                      known_hosts="/k", port=2200)
    public = spec.public()["options"]
    assert public == {"host": "10.0.0.9", "user": "pi", "port": 2200}


@pytest.mark.parametrize("name", ["rpi5", "jetson-orin-nano", "linux-box"])
def test_example_device_files_are_valid(name):
    spec = load_device_file(ROOT / "devices" / f"{name}.yaml")
    assert spec.kind == "ssh" and "key_file" not in spec.public()["options"]


def test_ssh_config_is_merged_under_the_yaml(tmp_path):
    config = tmp_path / "config"
    config.write_text("Host orin\n  HostName 192.168.50.21\n  User nvidia\n  Port 2022\n"
                      "  IdentityFile ~/.ssh/lab_key\n  ProxyJump jumper\n"
                      "Host jumper\n  HostName bastion.example\n  User ops\n")
    s = resolve({"host": "orin", "ssh_config": str(config)})
    assert (s.hostname, s.user, s.port) == ("192.168.50.21", "nvidia", 2022)
    assert s.key_files[0].endswith("/.ssh/lab_key")
    assert (s.jump.hostname, s.jump.user, s.jump.port) == ("bastion.example", "ops", 22)
    s = resolve({"host": "orin", "ssh_config": str(config), "user": "bench", "port": 22, "jump": "me@hop:2200"})
    assert (s.user, s.port, s.jump.user, s.jump.hostname, s.jump.port) == ("bench", 22, "me", "hop", 2200)


def test_jetson_and_pi_facts_are_parsed():
    text = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8"
    assert probe.tegra_release(text) == {"l4t": "36.4.3", "board": "generic", "gcid": "38968081"}
    assert probe.nvpmodel_mode("NV Power Mode: 15W\n0\n") == {"name": "15W", "id": 0}
    assert probe.nvpmodel_mode("NV Power Mode: MAXN_SUPER\n2") == {"name": "MAXN_SUPER", "id": 2}
    assert probe.os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian"') \
        == "Debian GNU/Linux 12 (bookworm)"
    assert probe.tegra_release(None) is None


def test_probe_runs_here():
    facts = probe.probe("/")
    assert facts["python"] and facts["runtimes"]["onnxruntime"].get("version")


# ----------------------------------------------------------------- retry and exit codes


class FakeLink:
    """Plays back a script of results for `run`; counts reconnects."""

    def __init__(self, script):
        self.script, self.opened, self.alive = list(script), 0, True
        self.spec_bytes_uploaded = 0

    def run(self, argv, timeout_s, what=None):
        if argv[0] == "rm" or "kill -9" in " ".join(argv):
            return Completed(argv, 0, "", "")
        step = self.script.pop(0)
        if isinstance(step, Exception):
            self.alive = False
            raise step
        return step

    def put_bytes(self, data, remote):
        if not self.alive:
            raise BoardLost("not connected")

    def close(self):
        self.alive = False


def fake_device(script, retries=2):
    device = SshDevice(ssh_device(retries=retries, retry_wait_s=0.0))
    device.link = FakeLink(script)
    device.workdir, device.runner = "/w", "/w/runner-x.py"

    def reconnect():
        device.link.opened += 1
        device.link.alive = True
    device.reconnect = reconnect
    return device


OK = Completed([], 0, '{"ok": true, "loop": {}}\n', "")


def test_a_dropped_measurement_is_retried_once_and_succeeds():
    device = fake_device([BoardLost("board: the connection dropped"), OK])
    assert device.run({"model": "/w/m.onnx"})["ok"]
    assert device.link.opened == 1 and len(device.attempts) == 1


def test_a_board_that_keeps_dropping_fails_with_the_reason_after_bounded_retries():
    device = fake_device([BoardLost("drop 1"), BoardLost("drop 2"), BoardLost("drop 3"), OK], retries=2)
    with pytest.raises(DeviceError, match="failed after 3 attempts .*drop 3"):
        device.run({"model": "/w/m.onnx"})


@pytest.mark.parametrize("code", [137, -9])
def test_sigkill_is_reported_as_the_oom_killer_with_stderr(code):
    device = fake_device([Completed([], code, "", "Killed\n")])
    with pytest.raises(RunnerError) as err:
        device.run({"model": "/w/m.onnx"})
    assert err.value.error_type == "Killed" and "OOM killer" in str(err.value) and "Killed" in err.value.stderr


def test_a_missing_board_python_says_so():
    device = fake_device([Completed([], 127, "", "sh: 1: exec: /opt/py/bin/python: not found\n")])
    with pytest.raises(DeviceError, match="python .* was not found"):
        device.run({"model": "/w/m.onnx"})


def test_runner_failure_carries_the_boards_stderr():
    out = '{"ok": false, "error": {"type": "ModelLoad", "message": "bad file"}}\n'
    device = fake_device([Completed([], 2, out, "Traceback: something on the board\n")])
    with pytest.raises(RunnerError) as err:
        device.run({"model": "/w/m.onnx"})
    assert err.value.error_type == "ModelLoad" and "something on the board" in str(err.value)


def test_without_root_the_board_tests_skip_with_a_reason(monkeypatch):
    import sshboards

    monkeypatch.setattr(sshboards.os, "geteuid", lambda: 1000)
    assert "need root" in sshboards.skip_reason()
