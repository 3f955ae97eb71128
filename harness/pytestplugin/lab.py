"""Lab CI in pytest: each test's regression verdicts in its JUnit properties, and an xdist
controller's collection of its workers' verdicts (harness.pytestplugin.gates decides them).

    --baseline RUN|latest|TAG        compare this run against an earlier one ...
    --compare-fail p50:5% ...        ... and fail the session on a significant regression
"""
from __future__ import annotations

import pytest

from .gates import verdict_from_dict, verdicts_for
from .state import HarnessState, harness_state

VERDICTS_ATTRIBUTE = "harness_verdicts"   # on a test report: (measurement id, [verdict dicts])


def _verdicts_of_test(item) -> tuple:
    state = harness_state(item.config)
    bench = state.existing_bench_session
    callspec = getattr(item, "callspec", None)
    if not state.gates or not state.baseline_run or bench is None or callspec is None:
        return None, []
    if "device_name" not in callspec.params or "variant_case" not in callspec.params:
        return None, []
    manifest, recipe = callspec.params["variant_case"]
    m = bench.result(callspec.params["device_name"], manifest, recipe)
    return (None, []) if m is None else (m.id, verdicts_for(state, m))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    measurement_id, verdicts = None, []
    if call.when == "call":
        # before the report is made: the call's and the teardown's report (JUnit XML) carry them
        try:
            measurement_id, verdicts = _verdicts_of_test(item)
        except Exception as exc:  # a broken baseline must not crash the test run
            item.user_properties.append(("harness_compare_error", str(exc)))
        for v in verdicts:
            # JUnit XML <property>: CI dashboards show which test's numbers regressed
            if v.regression:
                item.user_properties.append((f"harness_regression_{v.gate.metric}", v.explain()))
        if verdicts:
            item.user_properties.append(("harness_baseline", harness_state(item.config).baseline_run))
    outcome = yield
    if measurement_id is not None:
        # a plain attribute: xdist sends report.__dict__ to the controller; JUnit never sees it
        setattr(outcome.get_result(), VERDICTS_ATTRIBUTE, [measurement_id, [v.to_dict() for v in verdicts]])


class VerdictCollector:
    """On an xdist controller, the verdicts its workers decided (a single process already
    has them in the state)."""

    def __init__(self, state: HarnessState):
        self.state = state

    def pytest_runtest_logreport(self, report):
        payload = getattr(report, VERDICTS_ATTRIBUTE, None)
        if payload is None or report.when != "call":
            return
        measurement_id, dicts = payload
        if measurement_id not in self.state.verdicts:
            self.state.verdicts[measurement_id] = [verdict_from_dict(d) for d in dicts]


def pytest_configure(config):
    config.pluginmanager.register(VerdictCollector(harness_state(config)), "harness-verdicts")
