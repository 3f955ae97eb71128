"""The harness's pytest plugin, one pytest plugin module per concern.

Loaded through the ``pytest11`` entry point ``harness`` (``harness.plugin``, which names
these modules), so ``pytest suites/ --device local`` works from the repo root;
``-p no:harness`` turns all of it off.

    state.py             HarnessState: the ONE object the modules share (config.stash), and
                         the questions about the run every module asks (worker? benchmarking?)
    options.py           the command-line options, checked before anything runs
    run.py               the run's life: validate, start (xdist: one run for all workers),
                         finish (the gates' verdict, the store's run row, the HTML report)
    fixtures.py          parametrization (devices, variants), the suites' fixtures, each
                         test's outcome per device and variant
    lab.py               lab CI: the baseline and the regression gates, each measurement
                         gated once
    terminal.py          progress lines while building and measuring, and the one summary
    results_table.py     the results table the summary prints
    benchmark_bridge.py  device measurements as pytest-benchmark results

Nothing heavy (sqlalchemy, pandas, plotly, onnx, numpy) is imported until a run benchmarks:
the plugin is loaded into every pytest run of an environment that has the harness
(benchmarks/bench_plugin_import.py measures what that costs).
"""

# Registered in this order; hooks that must run before or after others say so (tryfirst,
# trylast, wrapper), so nothing depends on it.
PLUGIN_MODULES = [
    "harness.pytestplugin.options",
    "harness.pytestplugin.run",
    "harness.pytestplugin.fixtures",
    "harness.pytestplugin.lab",
    "harness.pytestplugin.terminal",
    "harness.pytestplugin.benchmark_bridge",
    "harness.search.pytest_entry",
]
