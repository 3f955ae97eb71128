"""Hostile and clumsy inputs at the door (docs/hostile-inputs.md): names that would become
paths, secrets in URLs and argv, duplicate YAML keys, report writes that fail, missing
directories, a silent wait for a leased board. Real files, real SQLite, real pytest runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import names, provenance, variant_build
from harness.errors import ConfigError, HarnessError
from harness.inventory import Inventory, load_device_file
from harness.report.page import write_page
from harness.redaction import redact, redact_argv
from paths import ROOT

BASE = ROOT / "models" / "digits_mlp.onnx"


def manifest_file(folder: Path, name="tiny", variant="fp32", extra="") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yaml"
    path.write_text(f"name: {name!r}\nbase: {BASE}\nvariants:\n  - {{name: {variant!r}, technique: fp32}}\n{extra}")
    return path


# ------------------------------------------------------------- item 2: names become paths


def test_manifest_name_that_is_a_path_is_refused_at_load(tmp_path):
    path = manifest_file(tmp_path / "models", name=str(tmp_path / "x" / "ESCAPED"))
    with pytest.raises(ConfigError) as err:
        variant_build.load_manifest(path)
    text = str(err.value)
    assert str(path) in text and ": name: expected a name of" in text and "ESCAPED" in text
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad", ["a/b", "..", "a b", "m$(touch x)n", "`id`", "é", "a\nb", "x" * 65, ""])
def test_variant_name_outside_the_alphabet_is_refused_with_the_field(tmp_path, bad):
    path = manifest_file(tmp_path / "models", variant=bad)
    with pytest.raises(ConfigError, match=r"variants\[0\]\.name: expected a name of 1-64 characters"):
        variant_build.load_manifest(path)


def test_the_cache_join_refuses_a_name_that_never_passed_the_door(tmp_path):
    """Defence in depth: a Manifest built in code (no loader) still cannot write outside."""
    manifest = variant_build.load_manifest(manifest_file(tmp_path / "models"))
    evil = variant_build.Manifest(name="../../escaped", source=manifest.source, base=manifest.base,
                        variants=manifest.variants)
    with pytest.raises(ValueError, match="not a safe path component"):
        variant_build.build_variant(evil, evil.variants[0], tmp_path / "cache", evaluate_accuracy=False)
    assert not list(tmp_path.rglob("*escaped*"))


def test_model_file_names_follow_the_alphabet_but_may_live_elsewhere(tmp_path):
    extra = "  - {name: lite, file: '../shared/m$(shell touch PWNED)n.tflite'}\n"
    with pytest.raises(ConfigError, match=r"variants\[1\]\.file: expected a model file path whose file name"):
        variant_build.load_manifest(manifest_file(tmp_path / "models", extra=extra))
    ok = variant_build.load_manifest(manifest_file(tmp_path / "models2", extra="  - {name: lite, file: ../shared/m.tflite}\n"))
    assert ok.recipe("lite").file == "../shared/m.tflite"  # read-only input: a shared folder is fine


def test_join_inside_catches_symlinks_out(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "variants").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside"):
        names.join_inside(tmp_path / "cache", "variants", "x.onnx")


def test_device_file_stem_and_device_flag_follow_the_alphabet(tmp_path):
    bad = tmp_path / "b$(touch PWNED)x.yaml"
    bad.write_text("kind: local\n")
    with pytest.raises(ConfigError) as err:
        load_device_file(bad)
    assert str(bad) in str(err.value) and "name (the file's stem): expected a name of" in str(err.value)
    with pytest.raises(ConfigError, match="--device: NAME: expected a name of"):
        Inventory(tmp_path).get("../../etc/passwd")


# ------------------------------------------------------------- item 3: secrets


@pytest.mark.parametrize("text, secret", [
    ("postgresql+psycopg://ci:s3cret@db/lab", "s3cret"),
    ("postgresql://ci:p@ss/w0rd@db:5432/lab", "p@ss/w0rd"),
    ("postgresql://ci@db/lab?password=s3cret&sslmode=require", "s3cret"),
    ("postgresql://ci@db/lab?sslmode=require&sslpassword=s3cret", "s3cret"),
    ("host=db user=ci password='two words' dbname=lab", "two words"),
    ("sqlite:///r.sqlite?PassPhrase=s3cret", "s3cret"),
])
def test_every_secret_bearing_form_is_redacted(text, secret):
    shown = redact(text)
    assert secret not in shown and "***" in shown
    assert "db" in shown or "sqlite" in shown  # the rest stays readable


def test_provenance_argv_keeps_no_secret(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest", "suites/", "--store", "postgresql://ci@db/lab?password=pw1",
                                      "--store=postgresql://ci:pw2@db/lab", "--db-password", "pw3",
                                      "--api-token=pw4", "--device", "rpi5"])
    argv = provenance.controller()["argv"]
    assert not any(f"pw{i}" in a for a in argv for i in range(1, 5)), argv
    assert "rpi5" in argv and "--device" in argv
    assert redact_argv(["--password", "x", "y"]) == ["--password", "***", "y"]


PLUGIN_SUITE = "def test_one(measure):\n    assert measure().latency.n >= 5\n"


def _plugin_project(pytester, tmp_path):
    """A local device `box` and a tiny model folder: the inner pytest's options for them."""
    models = manifest_file(tmp_path / "models").parent
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "box.yaml").write_text("kind: local\ncapabilities: {runtimes: [onnxruntime]}\n"
                                      "settings: {min_iterations: 5, min_duration_s: 0.01, warmup: 0}\n")
    return ["--devices-dir", devices, "--models-dir", models, "--device", "box", "-p", "no:cacheprovider"]


def test_store_password_in_query_never_printed_or_stored(pytester, tmp_path):
    args = _plugin_project(pytester, tmp_path)
    pytester.makepyfile(test_suite=PLUGIN_SUITE)
    url = f"sqlite:///{tmp_path / 'h.sqlite'}?password=hunter2-pw"
    result = pytester.runpytest_subprocess(*args, "--store", url, "--report", tmp_path / "r.html",
                                           "-W", "ignore", timeout=300)
    result.assert_outcomes(passed=1)
    assert "hunter2-pw" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*store: sqlite:///*password=[*][*][*]"])
    import sqlite3

    rows = sqlite3.connect(tmp_path / "h.sqlite").execute("select data from measurements").fetchall()
    assert rows and not any("hunter2-pw" in r[0] for r in rows)


def test_ssh_host_with_a_password_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "pi.yaml"
    path.write_text("kind: ssh\nssh: {host: 'pi:hunter2@10.0.0.5'}\n")
    with pytest.raises(ConfigError) as err:
        load_device_file(path)
    assert "ssh.host" in str(err.value) and "password_env" in str(err.value)
    assert "hunter2" not in str(err.value)
    path.write_text("kind: ssh\nssh: {host: 10.0.0.5, jump: 'ops:hunter2@bastion'}\n")
    with pytest.raises(ConfigError, match="ssh.jump"):
        load_device_file(path)


# ------------------------------------------------------------- item 9: duplicate YAML keys


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    device = tmp_path / "box.yaml"
    device.write_text("kind: local\nsettings:\n  threads: 1\n  warmup: 3\n  threads: 4\n")
    with pytest.raises(ConfigError) as err:
        load_device_file(device)
    assert str(device) in str(err.value)
    assert "duplicate key 'threads': first on line 3, again on line 5" in str(err.value)
    manifest = manifest_file(tmp_path / "models", extra="name: other\n")
    with pytest.raises(ConfigError, match="duplicate key 'name': first on line 1, again on line 5"):
        variant_build.load_manifest(manifest)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    device = tmp_path / "box.yaml"
    device.write_text("kind: local\nsettings:\n  <<: {threads: 1, warmup: 3}\n  threads: 2\n")
    assert load_device_file(device).settings["threads"] == 2


# ------------------------------------------------------------- item 4: report writes


def _report_text():
    return "<html>" + "x" * 100_000 + "</html>"


def _leftovers(folder: Path):
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")] if folder.is_dir() else []


def test_report_into_a_directory_or_proc_is_an_error_naming_the_path(tmp_path):
    with pytest.raises(HarnessError, match=f"report {tmp_path}: not written: it is a directory"):
        write_page(tmp_path, _report_text())
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path.parent) == []
    with pytest.raises(HarnessError, match="report /proc/harness-nope/r.html: not written: "):
        write_page(Path("/proc/harness-nope/r.html"), _report_text())


def _tiny_tmpfs(tmp_path, size_kb=64, ro=False):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a full or read-only disk) needs root")
    mount = tmp_path / ("ro" if ro else "full")
    mount.mkdir()
    opts = f"size={size_kb}k" + (",ro" if ro else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mount)], check=True)
    return mount


def test_report_on_a_full_or_read_only_disk_leaves_nothing_behind(tmp_path):
    full = _tiny_tmpfs(tmp_path)
    ro = _tiny_tmpfs(tmp_path, ro=True)
    try:
        with pytest.raises(HarnessError, match=f"report {full}/r.html: not written: No space left on device"):
            write_page(full / "r.html", _report_text())
        assert list(full.iterdir()) == []  # the partial temporary file is gone
        with pytest.raises(HarnessError, match=f"report {ro}/r.html: not written: Read-only file system"):
            write_page(ro / "r.html", _report_text())
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_cli_report_out_unwritable_is_exit_2_with_the_path(tmp_path, capsys):
    from harness.cli import main
    from harness.store import Store
    from fake_measurements import fake_measurement

    store = Store(f"sqlite:///{tmp_path / 'harness.sqlite'}")
    store.save(fake_measurement(run_id=store.start_run()))
    (tmp_path / "out").mkdir()
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert f"report {tmp_path / 'out'}: not written: it is a directory" in capsys.readouterr().err
    assert _leftovers(tmp_path) == []


def test_pytest_report_failure_comes_after_summary_and_junit_and_fails_the_run(pytester, tmp_path):
    args = _plugin_project(pytester, tmp_path)
    pytester.makepyfile(test_suite=PLUGIN_SUITE)
    (tmp_path / "blocked").mkdir()
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest_subprocess(*args, "--store", f"sqlite:///{tmp_path / 'h.sqlite'}",
                                           "--report", tmp_path / "blocked", f"--junitxml={junit}", timeout=300)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "Traceback" not in out + result.stderr.str()
    result.stdout.fnmatch_lines(["*harness measurements*", "*box*tiny/fp32*",
                                 f"harness: report {tmp_path / 'blocked'}: not written: it is a directory*"])
    assert 'tests="1"' in junit.read_text() and 'failures="0"' in junit.read_text()
    assert _leftovers(tmp_path) == []


def test_store_on_a_full_disk_fails_the_test_with_the_store_named(pytester, tmp_path):
    disk = _tiny_tmpfs(tmp_path, size_kb=512)
    try:
        args = _plugin_project(pytester, tmp_path)
        # The store opens (schema fits), then the disk fills before the measurement is saved.
        pytester.makepyfile(test_suite=f"""
import os

def test_one(harness_session, measure):
    harness_session.store.runs()
    fd = os.open({str(disk / 'filler')!r}, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b'0' * 4096)
    except OSError:
        os.close(fd)
    measure()
""")
        result = pytester.runpytest_subprocess(*args, "--store", f"sqlite:///{disk / 'h.sqlite'}",
                                               "--report", tmp_path / "r.html", "--no-lease", timeout=300)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        text = result.stdout.str() + result.stderr.str()
        assert "Traceback" not in text and "INTERNALERROR" not in text
        result.stdout.fnmatch_lines([f"*store sqlite:///{disk}/h.sqlite: write failed:*full*"])
        # a test failure with the message (pytest.fail), not an exception escaping the harness
        result.stdout.fnmatch_lines(["FAILED test_suite.py::test_one*- Failed: store sqlite:///*"])
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# ------------------------------------------------------------- item 5: missing directories


@pytest.mark.parametrize("flag", ["--models-dir", "--devices-dir"])
def test_a_missing_directory_is_a_usage_error(pytester, tmp_path, flag):
    args = _plugin_project(pytester, tmp_path)
    pytester.makepyfile(test_suite=PLUGIN_SUITE)
    args[args.index(flag) + 1] = tmp_path / "typo"
    result = pytester.runpytest_subprocess(*args, "--store", f"sqlite:///{tmp_path / 'h.sqlite'}", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{tmp_path / 'typo'}: {flag}: *it does not exist*"])


def test_an_empty_models_directory_is_a_usage_error(pytester, tmp_path):
    args = _plugin_project(pytester, tmp_path)
    pytester.makepyfile(test_suite=PLUGIN_SUITE)
    (tmp_path / "empty").mkdir()
    args[args.index("--models-dir") + 1] = tmp_path / "empty"
    result = pytester.runpytest_subprocess(*args, "--store", f"sqlite:///{tmp_path / 'h.sqlite'}", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--models-dir*it holds no *.yaml manifest*"])


def test_cli_missing_devices_dir_is_an_error(tmp_path, capsys):
    from harness.cli import main

    assert main(["--devices-dir", str(tmp_path / "typo"), "devices", "show", "local"]) == 2
    assert "--devices-dir" in capsys.readouterr().err


def test_hostile_run_tag_is_a_usage_error(pytester, tmp_path):
    args = _plugin_project(pytester, tmp_path)
    pytester.makepyfile(test_suite=PLUGIN_SUITE)
    result = pytester.runpytest_subprocess(*args, "--store", f"sqlite:///{tmp_path / 'h.sqlite'}",
                                           "--run-tag", "nightly; touch PWNED", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--run-tag: TAG: expected a name of*"])


# ------------------------------------------------------------- item 7: a lease wait is visible


def test_waiting_for_a_leased_board_says_who_holds_it_and_until_when(tmp_path):
    from harness.lease import LeaseBusy, LeaseManager
    from harness.store import Store

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    holder = LeaseManager(Store(url), ttl_s=60, holder="ci-runner-7:4242", run_id="abc123")
    holder.acquire("rpi5")
    said = []
    waiter = LeaseManager(Store(url), ttl_s=60, wait_s=0.3, poll_s=0.05, notify=said.append)
    try:
        with pytest.raises(LeaseBusy):
            waiter.acquire("rpi5")
    finally:
        holder.release_all()
    assert said, "the wait was silent"
    assert "rpi5: waiting for the board's lease: held by ci-runner-7:4242 (run abc123) until " in said[0]
    assert " UTC" in said[0] and "--lease-wait" in said[0]


def test_lease_wait_reaches_the_terminal_through_pytest_capture(pytester, tmp_path):
    from harness.lease import LeaseManager
    from harness.store import Store

    args = _plugin_project(pytester, tmp_path)
    pytester.makepyfile(test_suite=PLUGIN_SUITE)
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    holder = LeaseManager(Store(url), ttl_s=120, holder="other-job:99")  # held for the whole run
    holder.acquire("box")
    try:
        result = pytester.runpytest_subprocess(*args, "--store", url, "--report", "", "--lease-wait", "1",
                                               "-rs", timeout=300)
    finally:
        holder.release_all()
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["harness: box: waiting for the board's lease: held by other-job:99 until *"])
