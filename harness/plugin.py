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

from . import names, zoo
from .errors import ConfigError, HarnessError, RunnerError
from .inventory import Inventory
from .store import DEFAULT_URL, Store, redact
from .validity import InvalidMeasurement

_KEY = pytest.StashKey["HarnessState"]()

# Lab CI (run ids shared by xdist workers, leases, baselines and gates) lives in its own
# plugin module: see harness/lab.py.
pytest_plugins = ["harness.lab", "harness.search.pytest_entry"]


class HarnessState:
    """Per-pytest-process state; the Session (and its store) is created on first use."""

    def __init__(self, config):
        self.config = config
        opt = config.option
        root = Path(config.rootpath)
        self.devices_dir = Path(opt.harness_devices_dir) if opt.harness_devices_dir else root / "devices"
        self.models_dir = Path(opt.harness_models_dir) if opt.harness_models_dir else root / "models"
        # A directory given on the command line must exist (a typo is a usage error, not a green run)
        self.dirs_given = {"devices": bool(opt.harness_devices_dir), "models": bool(opt.harness_models_dir)}
        self.store_url = opt.harness_store or _default_store(root)
        self.report_path = opt.harness_report if opt.harness_report is not None else str(root / "reports" / "report.html")
        self.device_words = opt.harness_devices or ["local"]   # names, tags or globs
        self._device_names = None
        self.overrides = {"min_duration_s": opt.harness_min_duration, "warmup": opt.harness_warmup,
                          "rounds": opt.harness_rounds,
                          "profile": opt.harness_profile or None}   # None: the device YAML's settings.profile
        self._inventory = self._manifests = self._session = None
        self.selection: list = []
        self.progress = lambda text: None   # set by the terminal reporter when there is one
        self.outcomes: dict = {}            # "device|model/variant" -> {"passed": [...], "failed": [...]}
        self.errors: list[str] = []

    @property
    def device_names(self) -> list:
        """The devices the --device words select (a tag selects every device carrying it)."""
        if self._device_names is None:
            names = []
            for word in self.device_words:
                names += [n for n in self.inventory.select(word) if n not in names]
            self._device_names = names
        return self._device_names

    @property
    def inventory(self) -> Inventory:
        if self._inventory is None:
            given = self.dirs_given["devices"] or self.devices_dir.is_dir()
            self._inventory = Inventory(self.devices_dir if given else None)
        return self._inventory

    @property
    def manifests(self) -> list:
        if self._manifests is None:
            given = self.dirs_given["models"] or self.models_dir.is_dir()
            self._manifests = zoo.load_manifests(self.models_dir) if given else []
        return self._manifests

    @property
    def session(self):
        """The harness Session, made (and its store opened) on first use."""
        if self._session is None:
            from .session import Session

            from .lab import session_options

            store = Store(self.store_url)
            self._session = Session(self.inventory, store, self.manifests,
                                    cache=Path(self.config.rootpath) / zoo.DEFAULT_CACHE,
                                    overrides=self.overrides, run_tag=self.config.option.harness_run_tag,
                                    order_seed=self.config.option.harness_order_seed,
                                    progress=lambda text: self.progress(text),
                                    **session_options(self.config, store))  # run id, leases (lab CI)
            self._session.select(self.selection)
            if self._session.leases is not None:  # a wait for a board is shown, not silent
                self._session.leases.notify = _terminal_notice(self.config)
        return self._session

    @property
    def existing_session(self):
        """The Session if one was made (hooks that must not open a store ask this)."""
        return self._session

    def select(self, pairs) -> None:
        self.selection = list(pairs)
        if self._session is not None:
            self._session.select(self.selection)

    def validate(self):
        """Check devices and manifests before any test runs: a typo fails at once, clearly."""
        for name in self.device_names:
            self.inventory.get(name)
        _ = self.manifests
        if self.config.option.harness_run_tag is not None:
            names.check_name("--run-tag", "TAG", self.config.option.harness_run_tag)
        _ = self.session.store  # a store that cannot be opened stops the run before any test


def _terminal_notice(config):
    """A line on the terminal now, even from inside a test whose output pytest captures."""
    def say(text: str) -> None:
        reporter = config.pluginmanager.getplugin("terminalreporter")
        capture = config.pluginmanager.getplugin("capturemanager")
        if reporter is None or capture is None or hasattr(config, "workerinput"):
            return  # an xdist worker's output is not the user's terminal: the log has it
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"harness: {text}", yellow=True)
    return say


def _default_store(root: Path) -> str:
    # DEFAULT_URL's relative path, anchored at the rootdir so the store does not depend on
    # the directory pytest was started from.
    return f"sqlite:///{root / DEFAULT_URL.removeprefix('sqlite:///')}"


def pytest_addoption(parser):
    group = parser.getgroup("harness", "edge benchmarking harness")
    group.addoption("--device", action="append", dest="harness_devices", metavar="NAME",
                    help="device from the inventory to benchmark on: a name, a tag (every device "
                         "carrying it) or a glob (repeatable; default: local)")
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
    group.addoption("--rounds", dest="harness_rounds", type=int, metavar="R",
                    help="rounds per measurement: every variant of a device once per round, in a "
                         "shuffled order (default: the device's settings.rounds, 3 on local and ssh)")
    group.addoption("--order-seed", dest="harness_order_seed", type=int, metavar="N",
                    help="seed of the rounds' random order (default: drawn and stored with the run)")
    group.addoption("--run-tag", dest="harness_run_tag", metavar="TAG", help="a label stored with this run")
    group.addoption("--profile", dest="harness_profile", action="store_true", default=False,
                    help="per-operator profiles after the last round's timed loop, with the device's measured "
                         "peak and roofline (harness/profile.py; off by default)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires(runtime=None, provider=None, power=None): skip on devices that do not "
                   "declare the capability")
    config.addinivalue_line("markers", "xdist_group(name): the harness keeps one board's tests on one worker")
    if config.option.harness_rounds is not None and config.option.harness_rounds < 1:
        raise pytest.UsageError(f"--rounds: expected an integer >= 1, got {config.option.harness_rounds}")
    state = HarnessState(config)
    config.stash[_KEY] = state
    config.pluginmanager.register(OutcomeRecorder(state), "harness-outcomes")
    from . import benchmark_bridge  # device measurements as pytest-benchmark results

    benchmark_bridge.configure(config, state)
    if (config.option.harness_devices or config.option.harness_devices_dir or config.option.harness_models_dir
            or config.option.harness_run_tag is not None or collects_suites(config)):
        try:
            state.validate()
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not hasattr(config, "workerinput"):
            def progress(text, reporter=reporter):
                reporter.ensure_newline()
                reporter.write_line(f"harness: {text}", cyan=True)
            state.progress = progress


def collects_suites(config) -> bool:
    """This pytest run collects the benchmark suites (not, say, the harness's own tests)."""
    return any("suites" in Path(str(a)).parts for a in config.args)


def harness_state(config) -> HarnessState:
    """The one state object the plugin's modules (harness.lab, the bridge) share."""
    return config.stash[_KEY]


def pytest_generate_tests(metafunc):
    state = harness_state(metafunc.config)
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
        state.select(pairs)   # a device's campaign covers all of them (a pool's: one each)
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
    return device_class(spec.kind).spreads_over_workers(spec.options)


@pytest.fixture(scope="session")
def harness_session(request):
    yield harness_state(request.config).session


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
    outcome = yield
    report = outcome.get_result()
    if call.when == "call" and call.excinfo is not None and call.excinfo.errisinstance(InvalidMeasurement):
        report.longrepr = str(call.excinfo.value)   # the reasons, not a traceback
    if call.when != "call" or "device_name" not in getattr(item, "fixturenames", ()):
        return
    callspec = getattr(item, "callspec", None)
    session = harness_state(item.config).existing_session
    if session is None or callspec is None or "variant_case" not in callspec.params:
        return
    manifest, recipe = callspec.params["variant_case"]
    m = session.result(callspec.params["device_name"], manifest, recipe)
    # travels with the report to an xdist controller: the tests' outcomes per variant
    item.user_properties.append(("harness_case", f"{callspec.params['device_name']}|{manifest.name}/{recipe.name}"))
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


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark, which raises on --benchmark-compare-fail
def pytest_terminal_summary(terminalreporter, config):
    """The one results table: this process's measurements, or (an xdist controller, whose
    workers measured) the run's rows from the store."""
    state = harness_state(config)
    session = state.existing_session
    if session is not None and not hasattr(config, "workerinput"):
        measured = session.measured
        if not measured and session.run_id:
            measured = session.store.measurements(run_id=session.run_id)
        if measured:
            from .recommend import recommend
            from .summary import summary_lines

            title = "harness measurements" + (f" (run {session.run_id})" if session.run_id else "")
            terminalreporter.section(title)
            for line in summary_lines(measured):
                terminalreporter.write_line(line, red=line.startswith("INVALID"))
            outcomes = {tuple(case.split("|", 1)): record for case, record in state.outcomes.items()}
            for rec in recommend(measured, outcomes, {m.name: m for m in state.manifests}):
                terminalreporter.write_line(rec.reason, green=rec.variant is not None, bold=rec.variant is not None)
        for key, exc in session.failures.items():
            terminalreporter.write_line(f"failed: {key[0]} {key[1]}/{key[2]}: {str(exc).splitlines()[0]}", red=True)
        if measured and state.report_path and not state.errors:
            terminalreporter.write_line(f"report: {state.report_path}   store: {redact(session.store.url)}")
    for error in state.errors:  # also when nothing was measured: the run failed, say why
        terminalreporter.write_line(f"harness: {error}", red=True)


def pytest_sessionfinish(session, exitstatus):
    state = harness_state(session.config)
    hsession = state.existing_session
    if hsession is None:
        return
    run_id = hsession.run_id
    try:
        hsession.close(state.outcomes)
    except HarnessError as exc:  # e.g. the store's disk is full: said after the summary, run failed
        state.errors.append(str(exc))
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if run_id and state.report_path and not hasattr(session.config, "workerinput"):
        from .report import ReportWriteError, write_report

        try:
            write_report(hsession.store, Path(state.report_path), run_id=run_id,
                         manifests={m.name: m for m in state.manifests})
        except HarnessError as exc:  # shown after the summary table
            state.errors.append(str(exc))
            if isinstance(exc, ReportWriteError) and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a report asked for and not written
