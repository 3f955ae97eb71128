"""The suites' side of the plugin: parametrization, fixtures and each test's outcome.

    device_name   the device under test (parametrized from --device, default local)
    variant_case  (manifest, recipe) pair (parametrized from models/*.yaml)
    variant       the built Variant (file, size, params, MACs, host accuracy)
    device_spec   the validated DeviceSpec
    measure       measure(**settings) -> Measurement for this device and variant, taken once
                  per session and shared by every suite that asks for the same thing
"""
from __future__ import annotations

import sys

import pytest

from ..errors import ConfigError, HarnessError, RunnerError
from .state import HarnessState, harness_state


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires(runtime=None, provider=None, power=None): skip on devices that do not "
                   "declare the capability")
    config.addinivalue_line("markers", "xdist_group(name): the harness keeps one board's tests on one worker")
    config.pluginmanager.register(OutcomeRecorder(harness_state(config)), "harness-outcomes")


def pytest_generate_tests(metafunc):
    state = harness_state(metafunc.config)
    if "device_name" in metafunc.fixturenames:
        # Marked at creation (not in a collection hook, whose order against xdist's varies):
        # under xdist's loadgroup scheduling all of a board's tests go to one worker.
        metafunc.parametrize("device_name", [
            pytest.param(name, marks=() if _pooled(state, name) else pytest.mark.xdist_group(f"harness-device-{name}"))
            for name in state.device_names], scope="session")
    if "variant_case" in metafunc.fixturenames:
        from .. import variant_build

        try:
            pairs = variant_build.select(state.manifests, metafunc.config.option.harness_variants)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        state.select(pairs)   # a device's campaign covers all of them (a pool's: one each)
        # Only pools of boards (labgrid tags): a variant's tests stay on one worker, so it is
        # measured once, on one place, and the other workers measure other variants.
        pooled = all(_pooled(state, name) for name in state.device_names)
        metafunc.parametrize("variant_case", [
            pytest.param((m, r), marks=pytest.mark.xdist_group(f"harness-variant-{m.name}/{r.name}") if pooled else ())
            for m, r in pairs], ids=[f"{m.name}/{r.name}" for m, r in pairs], scope="session")


def _pooled(state, name) -> bool:
    """A device that is a pool of boards (labgrid tags): every xdist worker takes its own board."""
    from ..devices import device_class

    spec = state.inventory.get(name)
    return device_class(spec.kind).spreads_over_workers(spec.options)


@pytest.fixture(scope="session")
def harness_session(request):
    """The run's harness.session.BenchSession (named before the class was; kept for suites)."""
    yield harness_state(request.config).bench_session


@pytest.fixture
def device_spec(harness_session, device_name):
    return harness_session.spec(device_name)


@pytest.fixture(autouse=True)
def _harness_requirements(request):
    """Skip a test whose `requires` marker names a capability the device lacks."""
    markers = list(request.node.iter_markers("requires"))
    if not markers or "device_name" not in request.fixturenames:
        return
    spec = request.getfixturevalue("device_spec")
    for marker in markers:
        reason = spec.capabilities.lacks(**marker.kwargs)
        if reason:
            pytest.skip(f"{spec.name}: {reason}")


@pytest.fixture
def variant(harness_session, variant_case, device_name):
    manifest, recipe = variant_case
    reason = harness_session.skip_reason(device_name, recipe)
    if reason:
        pytest.skip(reason)
    try:
        return harness_session.variant(manifest, recipe)
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def manifest(variant_case):
    return variant_case[0]


@pytest.fixture
def measure(harness_session, variant_case, device_name, variant):
    """measure(**settings) -> Measurement of this test's variant on this test's device."""
    manifest, recipe = variant_case

    def _measure(**settings):
        from ..lease import LeaseBusy

        try:
            m = harness_session.measure(device_name, manifest, recipe, **settings)
            if not m.valid and harness_session.spec(device_name).validity.remeasure:
                m = harness_session.remeasure_once(m)   # the device YAML asks for one more try
            return m
        except LeaseBusy as exc:
            skip = str(exc)  # another run holds the board: not this run's failure
        except RunnerError as exc:
            if exc.error_type not in ("RuntimeMissing", "ProviderMissing"):
                failure = str(exc)
            else:
                # The YAML promised a runtime the board does not have: the test cannot
                # run there, which is a skip with the reason, not a failure of the model.
                skip = f"{device_name}: {exc.error_type}: {str(exc).splitlines()[0]}"
        except HarnessError as exc:  # a device fault, a store write that failed (disk full)
            failure = str(exc)
        # outside the except blocks: the message once, not chained to the error it reports
        if "skip" in locals():
            pytest.skip(skip)
        pytest.fail(failure, pytrace=False)

    return _measure


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    if call.when == "call":
        _record_case(item)
    outcome = yield
    # (an InvalidMeasurement exists only once harness.validity was imported: no import here)
    validity = sys.modules.get("harness.validity")
    if call.when == "call" and call.excinfo is not None and validity is not None \
            and call.excinfo.errisinstance(validity.InvalidMeasurement):
        outcome.get_result().longrepr = str(call.excinfo.value)   # the reasons, not a traceback


def _record_case(item) -> None:
    """The test's device and variant, and its measurement's verdict, as user properties:
    added before the call's report is made, so that report (which travels to an xdist
    controller: the tests' outcomes per variant) and the teardown's (which JUnit XML
    writes) both carry them."""
    callspec = getattr(item, "callspec", None)
    bench = harness_state(item.config).existing_bench_session
    if bench is None or callspec is None or not {"device_name", "variant_case"} <= set(callspec.params):
        return
    manifest, recipe = callspec.params["variant_case"]
    item.user_properties.append(("harness_case", f"{callspec.params['device_name']}|{manifest.name}/{recipe.name}"))
    m = bench.result(callspec.params["device_name"], manifest, recipe)
    if m is not None:   # JUnit XML <property>: dashboards see which numbers to distrust
        item.user_properties.append(("harness_validity", "; ".join([m.verdict] + m.validity.get("reasons", []))))


class OutcomeRecorder:
    """Each test's outcome per device and variant (also an xdist controller's, from its
    workers' reports), for the decision summary: a variant that failed a test is no
    recommendation."""

    def __init__(self, state: HarnessState):
        self.state = state

    def pytest_runtest_logreport(self, report):
        case = dict(report.user_properties).get("harness_case") if report.when == "call" else None
        if case is None or not (report.passed or report.failed):
            return
        test = report.nodeid.split("::")[-1].split("[")[0]
        record = self.state.outcomes.setdefault(case, {"passed": [], "failed": []})
        record["passed" if report.passed else "failed"].append(test)


