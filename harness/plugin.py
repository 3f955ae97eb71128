"""The pytest plugin: options, fixtures, markers and the end-of-run summary and report.

Thin on purpose: the work is done by harness.session.Session. Loaded through the
``pytest11`` entry point, so ``pytest suites/ --device local`` works from the repo root.

Fixtures for suites:
    device_name   the device under test (parametrized from --device, default local)
    variant_case  (manifest, recipe) pair (parametrized from models/*.yaml)
    variant       the built Variant (file, size, params, MACs, host accuracy)
    device_spec   the validated DeviceSpec
    measure       measure(**settings) -> Measurement for this device and variant, taken once
                  per session and shared by every suite that asks for the same thing
"""
from __future__ import annotations

from pathlib import Path

import pytest

from . import zoo
from .errors import ConfigError, DeviceError, HarnessError, RunnerError
from .inventory import Inventory
from .store import DEFAULT_URL, Store, redact

_KEY = pytest.StashKey["HarnessState"]()

# Lab CI (run ids shared by xdist workers, leases, baselines and gates) lives in its own
# plugin module: see harness/lab.py.
pytest_plugins = ["harness.lab"]


class HarnessState:
    """Per-pytest-process state; the Session (and its store) is created on first use."""

    def __init__(self, config):
        self.config = config
        opt = config.option
        root = Path(config.rootpath)
        self.devices_dir = Path(opt.harness_devices_dir) if opt.harness_devices_dir else root / "devices"
        self.models_dir = Path(opt.harness_models_dir) if opt.harness_models_dir else root / "models"
        self.store_url = opt.harness_store or _default_store(root)
        self.report_path = opt.harness_report if opt.harness_report is not None else str(root / "reports" / "report.html")
        self.device_names = opt.harness_devices or ["local"]
        self.overrides = {"min_duration_s": opt.harness_min_duration, "warmup": opt.harness_warmup}
        self._inventory = self._manifests = self._session = None
        self.errors: list[str] = []

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            self._inventory = Inventory(self.devices_dir if self.devices_dir.is_dir() else None)
        return self._inventory

    @property
    def manifests(self) -> list:
        if self._manifests is None:
            self._manifests = zoo.load_manifests(self.models_dir) if self.models_dir.is_dir() else []
        return self._manifests

    @property
    def session(self):
        if self._session is None:
            from .session import Session

            from .lab import session_options

            store = Store(self.store_url)
            self._session = Session(self.inventory, store, self.manifests,
                                    cache=Path(self.config.rootpath) / zoo.DEFAULT_CACHE,
                                    overrides=self.overrides, run_tag=self.config.option.harness_run_tag,
                                    **session_options(self.config, store))  # run id, leases (lab CI)
        return self._session

    def validate(self):
        """Check devices and manifests before any test runs: a typo fails at once, clearly."""
        for name in self.device_names:
            self.inventory.get(name)
        _ = self.manifests
        _ = self.session.store  # a store that cannot be opened stops the run before any test


def _default_store(root: Path) -> str:
    # DEFAULT_URL's relative path, anchored at the rootdir so the store does not depend on
    # the directory pytest was started from.
    return f"sqlite:///{root / DEFAULT_URL.removeprefix('sqlite:///')}"


def pytest_addoption(parser):
    group = parser.getgroup("harness", "edge benchmarking harness")
    group.addoption("--device", action="append", dest="harness_devices", metavar="NAME",
                    help="device from the inventory to benchmark on (repeatable; default: local)")
    group.addoption("--devices-dir", dest="harness_devices_dir", metavar="DIR",
                    help="inventory directory of device YAML files (default: <rootdir>/devices)")
    group.addoption("--models-dir", dest="harness_models_dir", metavar="DIR",
                    help="directory of model manifests (default: <rootdir>/models)")
    group.addoption("--variants", action="append", dest="harness_variants", metavar="GLOB",
                    help="only variants whose 'model/variant' id matches (repeatable), e.g. 'digits-cnn/*'")
    group.addoption("--store", dest="harness_store", metavar="URL",
                    help="measurement store URL (default: sqlite:///<rootdir>/reports/harness.sqlite)")
    group.addoption("--report", dest="harness_report", metavar="PATH",
                    help="HTML report written at the end (default: reports/report.html; '' for none)")
    group.addoption("--min-duration", dest="harness_min_duration", type=float, metavar="SECONDS",
                    help="minimum timed-loop duration per measurement (with the minimum count)")
    group.addoption("--warmup", dest="harness_warmup", type=int, metavar="N",
                    help="untimed inferences before the timed loop")
    group.addoption("--run-tag", dest="harness_run_tag", metavar="TAG", help="a label stored with this run")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires(runtime=None, provider=None, power=None): skip on devices that do not "
                   "declare the capability")
    config.addinivalue_line("markers", "xdist_group(name): the harness keeps one board's tests on one worker")
    state = HarnessState(config)
    config.stash[_KEY] = state
    from . import benchmark_bridge  # device measurements as pytest-benchmark results

    benchmark_bridge.configure(config, state)
    if config.option.harness_devices or _collects_suites(config):
        try:
            state.validate()
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None


def _collects_suites(config) -> bool:
    return any("suites" in Path(str(a)).parts for a in config.args)


def _state(config) -> HarnessState:
    return config.stash[_KEY]


def pytest_generate_tests(metafunc):
    state = _state(metafunc.config)
    if "device_name" in metafunc.fixturenames:
        # Marked at creation (not in a collection hook, whose order against xdist's varies):
        # under xdist's loadgroup scheduling all of a board's tests go to one worker.
        metafunc.parametrize("device_name", [
            pytest.param(name, marks=() if _pooled(state, name) else pytest.mark.xdist_group(f"harness-device-{name}"))
            for name in state.device_names], scope="session")
    if "variant_case" in metafunc.fixturenames:
        try:
            pairs = zoo.select(state.manifests, metafunc.config.option.harness_variants)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        # Only pools of boards (labgrid tags): a variant's tests stay on one worker, so it is
        # measured once, on one place, and the other workers measure other variants.
        pooled = all(_pooled(state, name) for name in state.device_names)
        metafunc.parametrize("variant_case", [
            pytest.param((m, r), marks=pytest.mark.xdist_group(f"harness-variant-{m.name}/{r.name}") if pooled else ())
            for m, r in pairs], ids=[f"{m.name}/{r.name}" for m, r in pairs], scope="session")


def _pooled(state, name) -> bool:
    """A device that is a pool of boards (labgrid tags): every xdist worker takes its own board."""
    from .devices import device_class

    spec = state.inventory.get(name)
    return bool(getattr(device_class(spec.kind), "spreads_over_workers", lambda options: False)(spec.options))


@pytest.fixture(scope="session")
def harness_session(request):
    state = _state(request.config)
    yield state.session


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
        from .lease import LeaseBusy

        try:
            return harness_session.measure(device_name, manifest, recipe, **settings)
        except LeaseBusy as exc:
            pytest.skip(str(exc))  # another run holds the board: not this run's failure
        except RunnerError as exc:
            if exc.error_type in ("RuntimeMissing", "ProviderMissing"):
                # The YAML promised a runtime the board does not have: the test cannot
                # run there, which is a skip with the reason, not a failure of the model.
                pytest.skip(f"{device_name}: {exc.error_type}: {str(exc).splitlines()[0]}")
            pytest.fail(str(exc), pytrace=False)
        except DeviceError as exc:
            pytest.fail(str(exc), pytrace=False)

    return _measure


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark, which raises on --benchmark-compare-fail
def pytest_terminal_summary(terminalreporter, config):
    state = _state(config)
    session = state._session
    if session is None or not session.measured:
        return
    from .summary import summary_lines

    terminalreporter.section("harness measurements")
    for line in summary_lines(session.measured):
        terminalreporter.write_line(line)
    if state.report_path and not hasattr(config, "workerinput"):
        terminalreporter.write_line(f"report: {state.report_path}   store: {redact(state.session.store.url)}")
    for error in state.errors:
        terminalreporter.write_line(f"harness: report not written: {error}", red=True)


def pytest_sessionfinish(session, exitstatus):
    state = _state(session.config)
    hsession = state._session
    if hsession is None:
        return
    run_id = hsession._run_id
    hsession.close()
    if run_id and state.report_path and not hasattr(session.config, "workerinput"):
        from .report import write_report

        try:
            write_report(hsession.store, Path(state.report_path), run_id=run_id)
        except HarnessError as exc:
            state.errors.append(str(exc))
