"""Hostile and clumsy SSH set-ups against real sshd test boards (root): known_hosts markers,
credentials that are missing or wrong, and two runs on one board with different stores."""
from __future__ import annotations

import subprocess

import pytest

from harness.devices import boardlock
from harness.devices.ssh import SshDevice
from harness.errors import DeviceError
from harness.lease import LeaseBusy

QUICK = {"warmup": 1, "min_duration_s": 0.02, "min_iterations": 3}


def _key_line(board) -> str:
    return board.host_key_line.split(" ", 1)[1]  # "ssh-ed25519 AAAA..."


# ------------------------------------------------------------- item 6: known_hosts markers


def test_a_revoked_host_key_is_refused_even_when_also_listed(ssh_lab, fast_board, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"{fast_board.host_key_line}\n@revoked * {_key_line(fast_board)}\n")
    text = ssh_lab.refusal(fast_board, name="revoked", known_hosts=str(known))
    assert "marks @revoked (line 2)" in text and str(known) in text and "SHA256:" in text


def test_revoked_and_cert_authority_lines_for_others_do_not_break_a_good_entry(ssh_lab, fast_board, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    other_key = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"@revoked old.example {other_key}\n@cert-authority *.example {other_key}\n"
                     f"{fast_board.host_key_line}\n")
    with SshDevice(ssh_lab.spec(fast_board, name="markers", known_hosts=str(known))) as device:
        assert device.link.alive


def test_a_board_known_only_through_a_cert_authority_is_refused_clearly(ssh_lab, fast_board, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority * {_key_line(fast_board)}\n")
    text = ssh_lab.refusal(fast_board, name="ca", known_hosts=str(known))
    assert "@cert-authority line(s) 1 are not used" in text and "does not verify host certificates" in text


# ------------------------------------------------------------- item 8: auth errors name the variable


def test_an_unset_password_variable_is_named(ssh_lab, make_board, monkeypatch):
    board = make_board("pwunset", password="right-pw")
    monkeypatch.delenv("HARNESS_TEST_UNSET_PW", raising=False)
    spec = ssh_lab.spec(board, key_file=None, password_env="HARNESS_TEST_UNSET_PW")
    with pytest.raises(DeviceError, match="ssh.password_env names the environment variable "
                                          "HARNESS_TEST_UNSET_PW, which is not set"):
        SshDevice(spec).connect()


def test_a_wrong_password_names_its_variable_not_the_default_keys(ssh_lab, make_board, monkeypatch):
    board = make_board("pwwrong", password="right-pw")
    monkeypatch.setenv("HARNESS_TEST_WRONG_PW", "wrong-pw")
    spec = ssh_lab.spec(board, key_file=None, password_env="HARNESS_TEST_WRONG_PW")
    with pytest.raises(DeviceError) as err:
        SshDevice(spec).connect()
    text = str(err.value)
    assert "the password from $HARNESS_TEST_WRONG_PW (ssh.password_env)" in text
    assert "check the password in $HARNESS_TEST_WRONG_PW" in text and "wrong-pw" not in text


@pytest.fixture
def encrypted_key(ssh_lab, fast_board, tmp_path):
    key = tmp_path / "enc_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "right-pass", "-f", str(key)], check=True)
    with open(fast_board.home / ".ssh" / "authorized_keys", "a") as f:
        f.write(key.with_suffix(".pub").read_text())
    return key


def test_an_encrypted_key_without_passphrase_env_says_to_set_it(ssh_lab, fast_board, encrypted_key):
    spec = ssh_lab.spec(fast_board, name="enc", key_file=str(encrypted_key))
    with pytest.raises(DeviceError) as err:
        SshDevice(spec).connect()
    assert str(encrypted_key) in str(err.value) and "set ssh.passphrase_env" in str(err.value)


def test_a_wrong_passphrase_names_its_variable(ssh_lab, fast_board, encrypted_key, monkeypatch):
    monkeypatch.setenv("HARNESS_TEST_PASS", "wrong-pass")
    spec = ssh_lab.spec(fast_board, name="enc2", key_file=str(encrypted_key), passphrase_env="HARNESS_TEST_PASS")
    with pytest.raises(DeviceError) as err:
        SshDevice(spec).connect()
    text = str(err.value)
    assert "passphrase from $HARNESS_TEST_PASS" in text and "wrong-pass" not in text
    monkeypatch.setenv("HARNESS_TEST_PASS", "right-pass")
    with SshDevice(spec) as device:
        assert device.link.alive


# ------------------------------------------------------------- item 7: one board, two stores


def test_two_runs_with_different_stores_never_share_a_board(ssh_lab, make_board, tiny_onnx, monkeypatch):
    board = make_board("shared")
    first = SshDevice(ssh_lab.spec(board))
    first.connect()
    try:
        monkeypatch.setattr(boardlock, "run_id", lambda: "other-controller:777")
        second = SshDevice(ssh_lab.spec(board, name="shared-again", lock_wait_s=1.0))
        with pytest.raises(LeaseBusy) as err:  # the plugin skips on it, like a store lease
            second.connect()
        second.close()
        assert "in use by" in str(err.value) and "board.lock" in str(err.value)
        assert "pid=" in str(err.value)  # who: the holder's controller and its process on the board
    finally:
        first.close()
    with SshDevice(ssh_lab.spec(board, name="shared-after", lock_wait_s=30.0)) as device:
        assert device.run({"model": device.deploy(tiny_onnx), **QUICK})["ok"]
