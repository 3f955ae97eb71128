"""The plugin in a pytest run that does not benchmark: loaded (the pytest11 entry point),
and nothing heavy imported. The time it costs is a figure: benchmarks/bench_plugin_import.py."""
from inner_pytest import pytest_argv, run_inner

HEAVY = ("sqlalchemy", "pandas", "plotly", "onnx", "onnxruntime", "numpy", "scipy", "yaml")
CONFTEST = f"""\
import sys

def pytest_unconfigure(config):
    print("HARNESS-LOADED:", config.pluginmanager.hasplugin("harness"))
    print("HEAVY-LOADED:", ",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_a_run_that_does_not_benchmark_imports_nothing_heavy(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    # a fresh interpreter: this process has imported everything long ago
    proc = run_inner(pytest_argv(tmp_path, "-q", "-s"), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HARNESS-LOADED: True" in proc.stdout   # the test is about the plugin, so it must be there
    loaded = proc.stdout.split("HEAVY-LOADED:", 1)[1].splitlines()[0].strip()
    assert "sqlalchemy" not in loaded.split(",")
    assert loaded == ""
