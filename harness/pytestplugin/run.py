"""The run's life in pytest: check what to measure, start one run, finish it.

    --device a --device b -n 2   one board per xdist worker (tests grouped by device), one run
                                 id made by the controller (BenchSession.start_run) and handed to
                                 every worker, one report written by the controller

The finish is one hook, in the order it must happen: the gates' verdict on the run
(harness.pytestplugin.gates), then the run row with the tests' outcomes and the leases
released (BenchSession.close), then the HTML report.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ..errors import HarnessError
from . import gates
from .state import benchmarking, harness_state, is_worker, is_xdist_controller


def pytest_configure(config):
    state = harness_state(config)
    if is_worker(config):
        # the controller made the run and resolved the baseline; every worker uses the same
        state.worker_run_id = config.workerinput.get("harness_run_id")
        state.baseline_run = config.workerinput.get("harness_baseline_run")
        if config.workerinput.get("harness_group_by_device"):
            # workers re-parse the command line, so the controller's --dist choice comes this way
            config.option.loadgroup = True
    elif is_xdist_controller(config):
        config.pluginmanager.register(XdistController(), "harness-xdist-controller")
        if config.option.dist == "load":
            # one board per worker: a board's tests never run concurrently (with one board,
            # its tests stay on one worker rather than two workers queueing for its lease)
            config.option.dist = "loadgroup"
    if benchmarking(config):
        try:
            state.validate()
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)  # before xdist starts its workers, which need both answers
def pytest_sessionstart(session):
    config = session.config
    state = harness_state(config)
    if is_worker(config) or not benchmarking(config) or not (state.baseline_ref or is_xdist_controller(config)):
        return
    try:
        if state.baseline_ref:
            gates.resolve_baseline(state)
        if is_xdist_controller(config):
            state.bench_session.start_run()  # now, so every worker writes into this one run
    except HarnessError as exc:
        pytest.exit(f"harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)


class XdistController:
    """Registered only on an xdist controller (the hook exists only with xdist)."""

    def pytest_configure_node(self, node):
        if not benchmarking(node.config):
            return
        state = harness_state(node.config)
        node.workerinput["harness_run_id"] = state.bench_session.start_run()
        node.workerinput["harness_baseline_run"] = state.baseline_run
        node.workerinput["harness_group_by_device"] = node.config.option.dist == "loadgroup"


def pytest_sessionfinish(session, exitstatus):
    state = harness_state(session.config)
    bench = state.existing_bench_session
    if bench is None:
        return
    run_id = bench.run_id
    if run_id is not None and not is_worker(session.config) and state.gates and state.baseline_run:
        gates.judge_run(state)
        if state.comparison.regressions and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    try:
        bench.close(state.outcomes)
    except HarnessError as exc:  # e.g. the store's disk is full: said after the summary, run failed
        state.errors.append(str(exc))
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if run_id and state.report_path and not is_worker(session.config):
        from ..report import ReportWriteError, write_report

        try:
            write_report(bench.store, Path(state.report_path), run_id=run_id,
                         manifests={m.name: m for m in state.manifests})
        except HarnessError as exc:  # shown after the summary table
            state.errors.append(str(exc))
            if isinstance(exc, ReportWriteError) and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a report asked for and not written
