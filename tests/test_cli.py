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
    assert "no harness.sqlite store here" in capsys.readouterr().err


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
