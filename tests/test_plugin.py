"""The pytest plugin as users drive it: options, parametrization, skips, summary, report."""
import sqlite3

import pytest

from paths import ROOT


MANIFEST = """\
name: tiny
base: {base}
dataset: digits
variants:
  - {{name: fp32, technique: fp32}}
  - {{name: fp16, technique: fp16}}
  - {{name: lite, file: {tflite}, technique: tflite-fp32}}
"""

SUITE = """\
import pytest

def test_latency(measure):
    m = measure()
    assert m.latency.n >= 20

@pytest.mark.requires(provider="CUDAExecutionProvider")
def test_gpu_only(measure):
    measure()
"""


@pytest.fixture
def project(pytester, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.yaml").write_text(MANIFEST.format(base=ROOT / "models" / "digits_mlp.onnx",
                                                      tflite=ROOT / "models" / "digits_mlp_fp32.tflite"))
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "box.yaml").write_text("kind: local\ncapabilities: {runtimes: [onnxruntime]}\n"
                                      "settings: {min_iterations: 20, min_duration_s: 0.05, warmup: 1}\n")
    pytester.makepyfile(test_suite=SUITE)
    args = ["--devices-dir", str(devices), "--models-dir", str(models),
            "--store", f"sqlite:///{tmp_path / 'h.sqlite'}", "--report", str(tmp_path / "r.html"),
            "-p", "no:cacheprovider"]
    return pytester, args, tmp_path


def test_suite_runs_measures_stores_and_reports(project):
    pytester, args, tmp = project
    result = pytester.runpytest_subprocess(*args, "--device", "box", "-rs", timeout=300)
    # fp32 and fp16 measured; the tflite variant skipped (box declares no TFLite runtime);
    # the GPU test skipped for every variant (no CUDA provider declared).
    result.assert_outcomes(passed=2, skipped=4)
    # the table lists the fastest first, so the two rows come in either order
    result.stdout.fnmatch_lines(["*harness measurements*", "*box*tiny/fp*", "*box*tiny/fp*", "report: *r.html*"])
    table = result.stdout.str()[result.stdout.str().index("harness measurements"):]
    assert " tiny/fp16 " in table and " tiny/fp32 " in table
    result.stdout.fnmatch_lines(["*needs execution provider 'CUDAExecutionProvider'*"])
    result.stdout.fnmatch_lines(["*box cannot run lite: it needs one of the runtimes litert, tflite_runtime*"])
    rows = sqlite3.connect(tmp / "h.sqlite").execute("select device, variant, n from measurements").fetchall()
    assert sorted(r[:2] for r in rows) == [("box", "fp16"), ("box", "fp32")]
    assert all(n >= 20 for *_, n in rows)
    assert (tmp / "r.html").stat().st_size > 100_000


def test_unknown_device_is_a_usage_error_listing_known_ones(project):
    pytester, args, _ = project
    result = pytester.runpytest_subprocess(*args, "--device", "bx", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--device: expected a device name, a tag or a glob: names box, local, got 'bx'*did you mean 'box'*"])


def test_variant_filter_and_cli_overrides(project):
    pytester, args, tmp = project
    result = pytester.runpytest_subprocess(*args, "--device", "box", "--variants", "tiny/fp16",
                                           "--min-duration", "0.01", "--warmup", "0", timeout=300)
    result.assert_outcomes(passed=1, skipped=1)
    import json

    data = json.loads(sqlite3.connect(tmp / "h.sqlite").execute("select data from measurements").fetchone()[0])
    assert data["settings"]["min_duration_s"] == 0.01 and data["settings"]["warmup"] == 0


def test_invalid_device_yaml_fails_before_any_test(project):
    pytester, args, tmp = project
    (tmp / "devices" / "box.yaml").write_text("kind: local\nsettings: {warmup: lots}\n")
    result = pytester.runpytest_subprocess(*args, "--device", "box", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*box.yaml: settings.warmup: expected an integer, got 'lots'*"])


def test_runtime_promised_but_missing_on_the_device_is_a_skip(project):
    try:
        import tflite_runtime  # noqa: F401
        pytest.skip("tflite_runtime is installed here, so the device really has it")
    except ImportError:
        pass
    pytester, args, tmp = project
    (tmp / "devices" / "old.yaml").write_text("kind: local\ncapabilities: {runtimes: [tflite_runtime]}\n"
                                              "settings: {min_iterations: 5, min_duration_s: 0.01}\n")
    result = pytester.runpytest_subprocess(*args, "--device", "old", "--variants", "tiny/lite", "-rs",
                                           timeout=300)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*old: RuntimeMissing*tflite_runtime is not installed*"])


# ------------------------------------------------------------------ the terminal

BENCHMARK_SUITE = """\
from harness.pytestplugin.benchmark_bridge import record

def test_device(benchmark, measure):
    record(benchmark, measure())
"""


def _harness_lines(text: str) -> list:
    """The lines the harness wrote (progress, table, report and store), in order."""
    return [line for line in text.splitlines() if line.startswith(("harness", "report: ", "store: ", "box "))]


def test_the_terminal_shows_progress_one_table_and_the_report_and_store_last(project):
    pytester, args, tmp = project
    pytester.makepyfile(test_bench=BENCHMARK_SUITE)
    result = pytester.runpytest_subprocess(*args, "--device", "box", "--variants", "tiny/fp*", "--rounds", "2",
                                           "--order-seed", "7", timeout=300)
    result.assert_outcomes(passed=4, skipped=2)
    out = result.stdout.str()
    # progress names each variant built, and the device, round and variants while measuring
    result.stdout.fnmatch_lines(["harness: building tiny/fp32 (fp32)", "harness: building tiny/fp16 (fp16)"],
                                consecutive=False)
    result.stdout.fnmatch_lines(["harness: box: round 1/2 (order seed 7): tiny/fp*, tiny/fp*",
                                 "harness: box: round 2/2 (order seed 7): tiny/fp*, tiny/fp*"])
    # one results table: pytest-benchmark's own is not shown, nor its banner
    assert out.count("harness measurements") == 1
    assert "benchmark 'box'" not in out and "Name (time in" not in out and "automatically disabled" not in out
    lines = _harness_lines(out)
    assert lines[-2:] == [f"report: {tmp / 'r.html'}", f"store: sqlite:///{tmp / 'h.sqlite'}"]


def test_pytest_benchmark_tables_when_an_option_asks_for_them(project):
    pytester, args, tmp = project
    pytester.makepyfile(test_bench=BENCHMARK_SUITE)
    result = pytester.runpytest_subprocess(*args, "--device", "box", "--variants", "tiny/fp32",
                                           "--benchmark-columns", "min,median", timeout=300)
    result.assert_outcomes(passed=2, skipped=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*benchmark 'box'*", "*Name (time in *)*Min*Median*"])
    assert out.count("harness measurements") == 1
    assert out.index("harness measurements") < out.index("Name (time in")   # the harness's table first
    assert out.index("Name (time in") < out.index("\nreport: ") < out.index("\nstore: ")  # closing lines last
    assert _harness_lines(out)[-1].startswith("store: ")


FP16_OVER_BUDGET = """
def test_budget(measure, variant_case):
    measure()
    assert variant_case[1].name != "fp16", "over budget"
"""


def test_each_tests_outcome_per_variant_reaches_the_run(project):
    pytester, args, tmp = project
    pytester.makepyfile(test_budget=FP16_OVER_BUDGET)
    result = pytester.runpytest_subprocess(*args, "--device", "box", "--variants", "tiny/fp*", "test_budget.py",
                                           timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    import json

    settings = json.loads(sqlite3.connect(tmp / "h.sqlite").execute("select settings from runs").fetchone()[0])
    assert settings["outcomes"] == {"box|tiny/fp32": {"passed": ["test_budget"], "failed": []},
                                    "box|tiny/fp16": {"passed": [], "failed": ["test_budget"]}}


def test_last_failed_reruns_only_the_variant_that_failed(project):
    pytester, args, tmp = project
    args = [a for a in args if a not in ("-p", "no:cacheprovider")]   # --lf needs pytest's cache
    pytester.makepyfile(test_budget=FP16_OVER_BUDGET)
    first = pytester.runpytest_subprocess(*args, "--device", "box", "--variants", "tiny/fp*", "test_budget.py",
                                          timeout=300)
    first.assert_outcomes(passed=1, failed=1)
    again = pytester.runpytest_subprocess(*args, "--device", "box", "--variants", "tiny/fp*", "test_budget.py",
                                          "--lf", "-v", timeout=300)
    again.assert_outcomes(failed=1, deselected=1)
    again.stdout.fnmatch_lines(["*test_budget*box-tiny/fp16*FAILED*"])
