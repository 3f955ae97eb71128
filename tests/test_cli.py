"""`harness` on the command line: exit codes and messages a user can act on."""
import pytest

from harness.cli import main
from paths import ROOT


def test_devices_lists_and_flags_invalid_files(tmp_path, capsys):
    (tmp_path / "good.yaml").write_text("kind: local\ndescription: a box\n")
    (tmp_path / "bad.yaml").write_text("kind: local\nsettings: {threads: two}\n")
    assert main(["--devices-dir", str(tmp_path), "devices"]) == 1
    out = capsys.readouterr().out
    assert "good" in out and "a box" in out
    assert "bad.yaml: settings.threads: expected an integer, got 'two'" in out


def test_devices_show_and_unknown_name(tmp_path, capsys):
    (tmp_path / "good.yaml").write_text("kind: local\n")
    assert main(["--devices-dir", str(tmp_path), "devices", "show", "good"]) == 0
    assert '"kind": "local"' in capsys.readouterr().out
    assert main(["--devices-dir", str(tmp_path), "devices", "show", "god"]) == 2
    assert "did you mean 'good'" in capsys.readouterr().err


def test_variants_build_prints_the_table(tmp_path, capsys):
    code = main(["variants", "build", str(ROOT / "models" / "digits_mlp.yaml"), "--cache", str(tmp_path), "-q"])
    assert code == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert set(lines) == {f"digits-mlp/{v}" for v in ("fp32", "fp16", "int8-dynamic", "int8-static",
                                                       "tflite-fp32", "tflite-fp16", "tflite-int8")}
    assert "1.00x" in lines["digits-mlp/fp32"] and "+0.00" in lines["digits-mlp/fp32"]
    assert "prebuilt" in lines["digits-mlp/tflite-int8"]


def test_report_needs_a_store(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert f"no store at {tmp_path / 'harness.sqlite'}" in capsys.readouterr().err
    assert not (tmp_path / "harness.sqlite").exists()


def test_report_from_a_store_directory(tmp_path, capsys):
    from harness.store import Store
    from fake_measurements import fake_measurement

    store = Store(f"sqlite:///{tmp_path / 'harness.sqlite'}")
    run = store.start_run()
    store.save(fake_measurement(run_id=run))
    assert main(["report", str(tmp_path), "--run", "latest"]) == 0
    assert (tmp_path / "report.html").stat().st_size > 1000


def test_directory_options_work_after_the_subcommand_too(tmp_path, capsys):
    from harness.cli import main

    (tmp_path / "box.yaml").write_text("kind: local\ndescription: a box\n")
    assert main(["devices", "show", "box", "--devices-dir", str(tmp_path)]) == 0
    assert '"description": "a box"' in capsys.readouterr().out
    assert main(["--devices-dir", str(tmp_path), "devices", "show", "box"]) == 0   # and before it
    assert main(["devices", "show", "box", "--devices-dir", str(tmp_path / "typo")]) == 2


# ------------------------------------------------------------------ from another directory


def _harness(cwd, *args):
    """`harness ARGS` as a user types it in `cwd` (a fresh process: no state from this one)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def project_with_a_run(tmp_path):
    """A user's project: devices/, a store with one run, and a subfolder to stand in."""
    from harness.store import Store
    from tests.fake_measurements import fake_measurement

    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "box.yaml").write_text("kind: local\ndescription: the project's box\n")
    store = Store(f"sqlite:///{tmp_path / 'reports' / 'harness.sqlite'}")
    run = store.start_run(tag="nightly")
    store.save(fake_measurement(run_id=run))
    (tmp_path / "src" / "deep").mkdir(parents=True)
    return tmp_path, run


def test_commands_find_the_project_root_from_a_subfolder(project_with_a_run):
    root, run = project_with_a_run
    deep = root / "src" / "deep"
    runs = _harness(deep, "runs")
    assert runs.returncode == 0, runs.stderr
    assert run in runs.stdout and "nightly" in runs.stdout
    devices = _harness(deep, "devices")
    assert "the project's box" in devices.stdout
    report = _harness(deep, "report")
    assert report.returncode == 0, report.stderr
    assert (root / "reports" / "report.html").is_file()
    assert not (deep / "reports").exists()   # nothing made where the user stood


def test_a_pyproject_declaring_the_harness_marks_the_root(tmp_path):
    from harness.project import find_root

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "lab"\ndependencies = ["edge-harness>=0.1"]\n')
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "pyproject.toml").write_text('[project]\nname = "edge-harness-notes"\n')  # not the harness
    assert find_root(tmp_path / "a" / "b") == tmp_path.resolve()
    assert find_root(ROOT / "harness" / "report") == ROOT   # the harness's own repository


@pytest.mark.parametrize("command", [["runs"], ["compare", "latest", "latest"], ["report"],
                                     ["export", "latest"], ["store", "stats"], ["devices", "status"]])
def test_read_only_commands_never_create_a_store(tmp_path, command):
    outside = tmp_path / "no-project"
    outside.mkdir()
    result = _harness(outside, *command)
    assert result.returncode == 2
    assert f"no store at {outside.resolve() / 'reports' / 'harness.sqlite'}" in result.stderr
    assert list(outside.iterdir()) == []


def test_scripts_bench_passes_pytest_options_through_unchanged(tmp_path):
    """scripts/bench as written, with a stand-in setup.sh whose `python` records its argv."""
    import shutil
    import subprocess

    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bench", tmp_path / "scripts" / "bench")
    (tmp_path / "scripts" / "setup.sh").write_text('python() { printf "%s\\n" "$@" > argv.txt; }\n')
    subprocess.run(["bash", str(tmp_path / "scripts" / "bench"), "--lf", "-k", "fp32 and not int8",
                    "--device", "rpi5"], cwd="/", check=True, timeout=60)
    argv = (tmp_path / "argv.txt").read_text().splitlines()
    assert argv == ["-m", "pytest", "suites/", "--lf", "-k", "fp32 and not int8", "--device", "rpi5"]
