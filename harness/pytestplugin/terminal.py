"""What the harness says on the terminal: progress while it builds and measures, and the
one summary at the end.

Progress goes through pytest's own terminal reporter: a line per variant built and per
campaign round (naming the device and the variants in the round's order), so a long first
run is never silent. The summary, in this order: the results table, the recommendations,
variants that failed, boards another run held, the comparison with the baseline, errors;
pytest-benchmark's tables (when a --benchmark-* option asks for them) come after it, and
the `report:` and `store:` lines last.
"""
from __future__ import annotations

import json

import pytest

from .results_table import results_lines
from .state import HarnessState, benchmarking, harness_state, is_worker


@pytest.hookimpl(trylast=True)  # after pytest's terminal module registered its reporter
def pytest_configure(config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or is_worker(config) or not benchmarking(config):
        return   # an xdist worker's output is not the user's terminal: the log has it
    state = harness_state(config)

    def say(text, **markup):
        """A line now, even from inside a test whose output pytest captures."""
        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is None:
            reporter.ensure_newline()
            return reporter.write_line(f"harness: {text}", **markup)
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(f"harness: {text}", **markup)

    state.progress = lambda text: say(text, cyan=True)
    state.notice = lambda text: say(text, yellow=True)


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter, config):
    """The harness's part before the other plugins' (pytest-benchmark raises on
    --benchmark-compare-fail), its closing lines after them."""
    state = harness_state(config)
    if is_worker(config):
        return (yield)
    _write_results(terminalreporter, state)
    try:
        return (yield)
    finally:
        _write_closing(terminalreporter, state)


def table_measurements(state: HarnessState) -> list:
    """This run's measurements, the newest of each variant and settings: a measurement taken
    again (the device's validity.remeasure) replaces the invalid one in the table; the
    store keeps both."""
    bench = state.existing_bench_session
    if bench is None:
        return []
    # an xdist controller measured nothing itself: its workers' rows are in the store
    rows = bench.measured or (bench.store.measurements(run_id=bench.run_id) if bench.run_id else [])
    newest = {(m.device, m.variant_id, json.dumps(m.settings, sort_keys=True, default=str)): m for m in rows}
    return list(newest.values())


def _write_results(tr, state: HarnessState) -> None:
    bench = state.existing_bench_session
    if bench is None:
        return
    measured = table_measurements(state)
    if measured:
        from ..recommend import recommend

        tr.section("harness measurements" + (f" (run {bench.run_id})" if bench.run_id else ""))
        for line in results_lines(measured):
            tr.write_line(line, red=line.startswith("INVALID"))
        outcomes = {tuple(case.split("|", 1)): record for case, record in state.outcomes.items()}
        for rec in recommend(measured, outcomes, {m.name: m for m in state.manifests}):
            tr.write_line(rec.reason, green=rec.variant is not None, bold=rec.variant is not None)
    for key, exc in bench.failures.items():
        tr.write_line(f"failed: {key[0]} {key[1]}/{key[2]}: {str(exc).splitlines()[0]}", red=True)
    if bench.leases is not None and bench.busy:
        tr.section("harness leases")
        for exc in bench.busy.values():
            tr.write_line(f"skipped: {exc}", yellow=True)
    if state.baseline_note:
        tr.section("harness comparison")
        tr.write_line(state.baseline_note, yellow=True)
    comparison = state.comparison
    if comparison is not None:
        tr.section("harness regressions" if comparison.regressions else "harness comparison")
        for line in comparison.lines():
            tr.write_line(line, red=line.startswith("REGRESSION"))
        if comparison.regressions:
            tr.write_line(f"harness: {len(comparison.regressions)} regression(s) against baseline "
                          f"{comparison.base_run}: failing the session", red=True, bold=True)


def _write_closing(tr, state: HarnessState) -> None:
    bench = state.existing_bench_session
    for error in state.errors:  # also when nothing was measured: the run failed, say why
        tr.write_line(f"harness: {error}", red=True)
    if bench is not None and bench.run_id and not state.errors and table_measurements(state):
        from ..redaction import redact

        tr.ensure_newline()
        if state.report_path:
            tr.write_line(f"report: {state.report_path}")
        tr.write_line(f"store: {redact(bench.store.url)}")
