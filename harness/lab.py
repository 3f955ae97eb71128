"""Lab CI in the pytest plugin: leases, one run shared by xdist workers, baselines and gates.

Registered by harness.plugin (``pytest_plugins``); kept apart so the core plugin stays thin.

    --device a --device b -n 2       one board per xdist worker (tests grouped by device), one
                                     run id made by the controller and handed to every worker,
                                     one report written by the controller
    --lease-wait / --lease-timeout   a board is locked through the store before it is used
    --baseline RUN|latest|TAG        compare this run against an earlier one ...
    --compare-fail p50:5% ...        ... and fail the session on a significant regression
"""
from __future__ import annotations

from typing import Optional

import pytest

from . import compare, metrics
from .errors import HarnessError
from .lease import DEFAULT_TTL_S, DEFAULT_WAIT_S, LeaseManager

_LAB = pytest.StashKey["LabState"]()


class LabState:
    def __init__(self):
        self.gates: list = []
        self.baseline_ref: Optional[str] = None
        self.baseline_run: Optional[str] = None
        self._baseline_by_key: Optional[dict] = None
        self.comparison: Optional[compare.Comparison] = None
        self.verdict_cache: dict = {}
        self.run_id: Optional[str] = None  # an xdist worker's, from the controller
        self.note: Optional[str] = None


def pytest_addoption(parser):
    group = parser.getgroup("harness-lab", "edge benchmarking harness: lab CI")
    group.addoption("--baseline", dest="harness_baseline", metavar="RUN|latest|TAG",
                    help="compare this run with an earlier run from the store: its id (or a unique "
                         "prefix), 'latest' (the newest earlier run with measurements) or a run tag")
    group.addoption("--compare-fail", dest="harness_compare_fail", action="append", metavar="EXPR",
                    help="fail on a significant regression beyond a threshold (repeatable): "
                         + metrics.gate_help().replace("%", "%%"))
    group.addoption("--lease-wait", dest="harness_lease_wait", type=float, default=DEFAULT_WAIT_S,
                    metavar="SECONDS", help="wait this long for a board another run holds, then skip "
                                            f"its tests naming the holder (default {DEFAULT_WAIT_S:.0f})")
    group.addoption("--lease-timeout", dest="harness_lease_timeout", type=float, default=DEFAULT_TTL_S,
                    metavar="SECONDS", help="a lease expires this long after its last renewal, so a "
                                            f"killed job frees its boards (default {DEFAULT_TTL_S:.0f})")
    group.addoption("--no-lease", dest="harness_no_lease", action="store_true",
                    help="do not lock boards through the store (ad hoc runs on a private machine)")


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _is_xdist_controller(config) -> bool:
    # (xdist registers its "dsession" plugin in its own pytest_configure, which may run after ours)
    return (not _is_worker(config) and bool(getattr(config.option, "numprocesses", None))
            and getattr(config.option, "dist", "no") != "no" and not config.getoption("collectonly"))


def _benchmarking(config) -> bool:
    """This pytest run measures boards (not, say, the harness's own tests under -n)."""
    from .plugin import collects_suites

    return bool(config.option.harness_devices) or collects_suites(config)


def _harness(config):
    from .plugin import harness_state

    return harness_state(config)


@pytest.hookimpl(tryfirst=True)  # before harness.plugin validates (and so opens the session)
def pytest_configure(config):
    lab = LabState()
    config.stash[_LAB] = lab
    opt = config.option
    try:
        lab.gates = compare.parse_gates(opt.harness_compare_fail or [])
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    if opt.harness_lease_timeout <= 0 or opt.harness_lease_wait < 0:
        raise pytest.UsageError("--lease-timeout must be > 0 and --lease-wait >= 0 (seconds)")
    lab.baseline_ref = opt.harness_baseline
    if lab.gates and not lab.baseline_ref:
        raise pytest.UsageError("--compare-fail needs --baseline RUN|latest|TAG to compare with")
    if _is_worker(config):
        # the controller made the run and resolved the baseline; every worker uses the same
        lab.run_id = config.workerinput.get("harness_run_id")
        lab.baseline_run = config.workerinput.get("harness_baseline_run")
        if config.workerinput.get("harness_group_by_device"):
            # workers re-parse the command line, so the controller's --dist choice comes this way
            config.option.loadgroup = True
    elif _is_xdist_controller(config):
        config.pluginmanager.register(XdistHooks(), "harness-lab-xdist")
        if opt.dist == "load":
            # one board per worker: a board's tests never run concurrently (with one board,
            # its tests stay on one worker rather than two workers queueing for its lease)
            opt.dist = "loadgroup"


def session_options(config, store) -> dict:
    """Session arguments for harness.plugin: the shared run id, leases, the run's settings."""
    lab = config.stash.get(_LAB, None)
    if lab is None:
        return {}
    opt = config.option
    out = {"run_settings": {
        "devices": opt.harness_devices or ["local"], "variants": opt.harness_variants,
        "baseline": lab.baseline_ref, "compare_fail": [str(g) for g in lab.gates],
        "workers": getattr(opt, "numprocesses", None) or 0}}
    if not opt.harness_no_lease:
        out["leases"] = LeaseManager(store, ttl_s=opt.harness_lease_timeout, wait_s=opt.harness_lease_wait)
    if _is_worker(config):
        out.update(run_id=lab.run_id, owns_run=False)
    return out


@pytest.hookimpl(tryfirst=True)  # before xdist starts its workers, which need both answers
def pytest_sessionstart(session):
    config = session.config
    lab = config.stash[_LAB]
    if _is_worker(config) or not _benchmarking(config) or not (lab.baseline_ref or _is_xdist_controller(config)):
        return
    try:
        hsession = _harness(config).session
        if lab.baseline_ref:
            try:
                lab.baseline_run = hsession.store.resolve_run(lab.baseline_ref, exclude=hsession.run_id)
            except HarnessError:
                if lab.baseline_ref != "latest" or any(r["measurements"] for r in hsession.store.runs()):
                    raise
                # the lab's first night: nothing to compare with yet, which is no error
                lab.note = "--baseline latest: no earlier run with measurements; nothing compared"
        if _is_xdist_controller(config):
            hsession.start_run()  # now, so every worker writes into this one run
    except HarnessError as exc:
        pytest.exit(f"harness: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)


class XdistHooks:
    """Registered only on an xdist controller (the hook exists only with xdist)."""

    def pytest_configure_node(self, node):
        if not _benchmarking(node.config):
            return
        state = _harness(node.config)
        node.workerinput["harness_run_id"] = state.session.start_run()
        node.workerinput["harness_baseline_run"] = node.config.stash[_LAB].baseline_run
        node.workerinput["harness_group_by_device"] = node.config.option.dist == "loadgroup"


# ------------------------------------------------------------------ gates (once per key)


def _baseline_measurements(config) -> dict:
    lab = config.stash[_LAB]
    if lab._baseline_by_key is None:
        store = _harness(config).session.store
        lab._baseline_by_key = {compare.measurement_key(m): m
                                for m in store.measurements(run_id=lab.baseline_run)}
    return lab._baseline_by_key


def _gate(config, m) -> list:
    """Every gate on one new measurement, decided once (the test's JUnit properties and the
    run's verdict read the same answer)."""
    lab = config.stash[_LAB]
    key = compare.measurement_key(m)
    if (key, m.id) not in lab.verdict_cache:
        base = _baseline_measurements(config).get(key)
        store = _harness(config).session.store
        lab.verdict_cache[(key, m.id)] = (
            [compare.compare_measurement(base, m, g, store.key_history(key, g.metric, exclude_run=m.run_id))
             for g in lab.gates] if base else [])
    return lab.verdict_cache[(key, m.id)]


def _verdicts_for(item) -> list:
    config = item.config
    lab = config.stash.get(_LAB, None)
    hsession = _harness(config).existing_session
    callspec = getattr(item, "callspec", None)
    if not lab or not lab.gates or not lab.baseline_run or hsession is None or callspec is None:
        return []
    if "device_name" not in callspec.params or "variant_case" not in callspec.params:
        return []
    manifest, recipe = callspec.params["variant_case"]
    m = hsession.result(callspec.params["device_name"], manifest, recipe)
    return _gate(config, m) if m is not None else []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    if call.when == "call":
        try:
            verdicts = _verdicts_for(item)
        except Exception as exc:  # a broken baseline must not crash the test run
            verdicts = []
            item.user_properties.append(("harness_compare_error", str(exc)))
        for v in verdicts:
            # JUnit XML <property>: CI dashboards show which test's numbers regressed
            if v.regression:
                item.user_properties.append((f"harness_regression_{v.gate.metric}", v.explain()))
        if verdicts:
            item.user_properties.append(("harness_baseline", item.config.stash[_LAB].baseline_run))
    yield


# ------------------------------------------------------------------ the run's verdict


@pytest.hookimpl(tryfirst=True)  # before harness.plugin finishes the run and writes the report
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    lab = config.stash.get(_LAB, None)
    hsession = _harness(config).existing_session
    if _is_worker(config) or not lab or not lab.gates or not lab.baseline_run or hsession is None:
        return
    run_id = hsession.run_id
    if run_id is None:
        return
    store = hsession.store
    newest = {}
    for m in store.measurements(run_id=run_id):   # every worker's; a re-measure replaces
        newest[compare.measurement_key(m)] = m
    comparison = compare.Comparison(lab.baseline_run, run_id)
    for key, m in newest.items():
        if key not in _baseline_measurements(config):
            comparison.unmatched.append(key)
        comparison.verdicts += _gate(config, m)
    lab.comparison = comparison
    store.save_comparison(comparison, lab.gates)
    if comparison.regressions and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    hsession = _harness(config).existing_session
    lab = config.stash.get(_LAB, None)
    if hsession is not None and hsession.leases is not None and hsession.busy:
        terminalreporter.section("harness leases")
        for exc in hsession.busy.values():
            terminalreporter.write_line(f"skipped: {exc}", yellow=True)
    if lab and lab.note:
        terminalreporter.section("harness comparison")
        terminalreporter.write_line(lab.note, yellow=True)
    if lab and lab.comparison is not None:
        c = lab.comparison
        terminalreporter.section("harness regressions" if c.regressions else "harness comparison")
        for line in c.lines():
            terminalreporter.write_line(line, red=line.startswith("REGRESSION"))
        if c.regressions:
            terminalreporter.write_line(f"harness: {len(c.regressions)} regression(s) against baseline "
                                        f"{c.base_run}: failing the session", red=True, bold=True)
