"""Device measurements as pytest-benchmark results.

A test that asks for pytest-benchmark's ``benchmark`` fixture and calls
``record(benchmark, measurement)`` turns one harness Measurement into one ordinary
pytest-benchmark result: its statistics are the per-inference latencies measured ON the
device (seconds, one "round" per inference), not host time around the SSH or serial
call; its group is the device; its name and fullname carry the device and the variant
(the parametrize id), so ``--benchmark-compare`` only ever matches the same variant on
the same board. Everything else the harness knows goes into ``extra_info``; the
devices' public descriptions go into the session's ``machine_info``.

``suites/test_benchmark.py`` is the one test per device and variant that does this.
Because it uses the real ``benchmark`` fixture, pytest-benchmark's own rules apply to
it unchanged: ``--benchmark-skip`` skips it, ``--benchmark-only`` runs only it,
``--benchmark-disable`` lets it measure but records nothing. Under xdist, where
pytest-benchmark disables itself, workers hand their device results to the controller,
which records them. The other suites never create benchmarks.

In a run that benchmarks devices, pytest-benchmark's own tables, saving and xdist banner
appear only when a ``--benchmark-*`` option asks for them: the harness prints one results
table, and a user who wants pytest-benchmark's (or its JSON, saving, comparing) says so.

Without pytest-benchmark (not installed, or ``-p no:benchmark``) a stand-in
``benchmark`` fixture skips such tests with a reason; the harness works as before.
See docs/pytest-benchmark.md.
"""
from __future__ import annotations

import json
import os
import shlex
import weakref
from dataclasses import asdict
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from ..errors import HarnessError
from .state import benchmarking, harness_state

if TYPE_CHECKING:
    from ..measurement import Measurement

PYTEST_BENCHMARK = "benchmark"  # pytest-benchmark's pytest11 entry-point name (-p no:benchmark)
DEVICE_TIMER = "device: runner perf_counter_ns per inference"
# Device settings that shaped the timed loop, shown as the benchmark's "options".
LOOP_SETTINGS = ("min_duration_s", "min_iterations", "max_iterations", "warmup", "threads",
                 "runtime", "providers")


def active(config) -> bool:
    return config.pluginmanager.hasplugin(PYTEST_BENCHMARK)


def asks_for_pytest_benchmark(config) -> bool:
    """A --benchmark-* option on the command line, in PYTEST_ADDOPTS or in the ini's addopts."""
    words = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
             *config.getini("addopts")]
    return any(str(word).startswith("--benchmark-") for word in words)


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark's (trylast) makes its BenchmarkSession
def pytest_configure(config):
    if active(config) and benchmarking(config) and not asks_for_pytest_benchmark(config):
        # Nobody asked for pytest-benchmark's tables: the harness's table is the one shown.
        # Disabled, record() keeps the measurement (stored by the harness) and pytest-benchmark
        # shows nothing: no tables, no empty tables and no "automatically disabled" banner
        # under xdist.
        config.option.benchmark_disable, config.option.benchmark_enable = True, False
        config.option.benchmark_quiet = True
    register_plugins(config)


def register_plugins(config) -> None:
    """Machine info for pytest-benchmark (and the xdist hand-over), or the stand-in fixture."""
    if not active(config):
        config.pluginmanager.register(StandIn(), "harness-benchmark-standin")
        return
    config.pluginmanager.register(MachineInfo(lambda: harness_state(config)), "harness-benchmark-bridge")
    # pytest-benchmark disables itself under xdist (host timings from parallel workers are
    # not trustworthy). Device timings are taken on the device, so the workers hand their
    # results to the controller, which records them as if measured there.
    if config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"):
        return
    if hasattr(config, "workerinput"):
        config.pluginmanager.register(XdistWorker(), "harness-benchmark-xdist-worker")
    elif config.getoption("dist", "no") != "no":
        config.pluginmanager.register(XdistController(config), "harness-benchmark-xdist-controller")


# ---------------------------------------------------------------- recording


# A disabled fixture's device result, kept for XdistWorker (which sends it to the controller)
# by the bridge itself rather than on pytest-benchmark's fixture; gone with the fixture.
_unrecorded: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def record(benchmark, measurement: Measurement) -> None:
    """Make ``measurement`` this test's pytest-benchmark result (once per test)."""
    # `_mode` is pytest-benchmark's own "fixture used" flag (BenchmarkFixture always has it):
    # setting it is the only way to take part in its once-per-test rule and its
    # "fixture was not used" warning.
    if benchmark._mode:
        from pytest_benchmark.fixture import FixtureAlreadyUsed

        raise FixtureAlreadyUsed(f"fixture already used in this test in {benchmark._mode!r} mode")
    benchmark._mode = "harness.pytestplugin.benchmark_bridge.record(...)"
    benchmark.group = benchmark.group or measurement.device  # a @pytest.mark.benchmark(group=) wins
    benchmark.params = plain_params(benchmark.params, measurement)
    benchmark.extra_info.update(extra_info(measurement))
    options = loop_options(measurement)
    seconds = [ns / 1e9 for ns in measurement.samples_ns]
    if benchmark.disabled:
        # --benchmark-disable: measured and stored by the harness, not recorded. Under
        # xdist, XdistWorker sends this on to the controller.
        _unrecorded[benchmark] = {"options": options, "data": seconds}
        return
    benchmark.stats = metadata(benchmark, options, seconds)
    benchmark._add_stats(benchmark.stats)  # the BenchmarkSession's list: table, JSON, save, compare


def metadata(fixture, options: dict, seconds: list):
    """pytest-benchmark's result object: one round of one iteration per device sample."""
    from pytest_benchmark.stats import Metadata

    stats = Metadata(fixture, iterations=1, options=options)
    for value in seconds:
        stats.update(value)
    return stats


def plain_params(params, m: Measurement):
    """The test's parameters as JSON-friendly ids (the variant case is a pair of objects)."""
    if params is None:
        return None
    out = {}
    for key, value in params.items():
        if key == "variant_case":
            out[key] = m.variant_id
        else:
            out[key] = value if _is_plain(value) else str(value)
    return out


def loop_options(m: Measurement) -> dict:
    options = {"timer": DEVICE_TIMER}
    options.update({k: m.settings[k] for k in LOOP_SETTINGS if k in m.settings})
    return options


def extra_info(m: Measurement) -> dict:
    """What a dashboard needs beside the timings; public facts only (DeviceSpec.public())."""
    prov = m.provenance or {}
    device = prov.get("device") or {}
    info = {
        "harness": True,
        "device": m.device,
        "device_kind": device.get("kind"),
        "emulated": m.emulated,
        "variant": m.variant_id,
        "model": m.model,
        "variant_name": m.variant,
        "technique": m.technique,
        "format": m.format,
        "model_sha256": m.model_sha256,
        "size_bytes": m.size_bytes,
        "storage_bytes": m.storage_bytes,
        "n_params": m.n_params,
        "macs": m.macs,
        "accuracy": m.accuracy,
        "accuracy_n": m.accuracy_n,
        "host_accuracy": m.host_accuracy,
        "memory": asdict(m.memory),
        "energy": m.energy,
        "latency_ms": m.latency.to_dict(),
        "timings_ms": m.timings_ms,
        "runtime": prov.get("runtime"),
        "board": prov.get("board"),
        "run_id": m.run_id,
        "measurement_id": m.id,
    }
    return json.loads(json.dumps(info, default=_json_default))  # plain JSON types for every storage


def _json_default(value):
    if hasattr(value, "tolist"):  # numpy scalars and arrays keep their numbers
        return value.tolist()
    return str(value)


def _is_plain(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------- plugins


class MachineInfo:
    """pytest-benchmark hook: the run's devices join the (controller host's) machine info.

    Only the inventory's public description is added, so the machine info is the same at
    start (when --benchmark-compare checks it) and at save time, and differs when the
    devices do.
    """

    def __init__(self, state):
        self.state = state   # () -> HarnessState: made after this plugin is registered

    def pytest_benchmark_update_machine_info(self, config, machine_info):
        state = self.state()
        try:
            devices = {name: state.inventory.get(name).public() for name in state.device_names}
        except HarnessError as exc:  # the harness reports inventory errors itself
            devices = {"error": str(exc)}
        machine_info["harness_devices"] = json.loads(json.dumps(devices, default=_json_default))

    @pytest.hookimpl(wrapper=True)
    def pytest_benchmark_compare_machine_info(self, config, benchmarksession, machine_info, compared_benchmark):
        # pytest-benchmark#217: its "machine_info is different" warning crashes the run
        # when the storage is not under the cwd (a lab's shared folder). A changed device
        # set makes that warning common here, so give it without the crash.
        try:
            return (yield)
        except ValueError:
            benchmarksession.logger.warning(
                f"Benchmark machine_info is different. Current: {json.dumps(machine_info, sort_keys=True)} "
                f"VS saved: {json.dumps(compared_benchmark.get('machine_info'), sort_keys=True)} "
                f"(location: {benchmarksession.storage}).")
            return []


REPORT_ATTRIBUTE = "harness_benchmark"  # travels with the test report from worker to controller


class XdistWorker:
    """On an xdist worker: attach the test's device result to its report."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        fixture = (getattr(item, "funcargs", None) or {}).get("benchmark")
        result = _unrecorded.pop(fixture, None) if fixture is not None and call.when == "call" else None
        if result is not None:
            # A plain attribute: xdist serializes report.__dict__; unlike user_properties it
            # stays out of JUnit XML.
            setattr(outcome.get_result(), REPORT_ATTRIBUTE, {
                "name": fixture.name, "fullname": fixture.fullname, "group": fixture.group,
                "param": fixture.param, "params": fixture.params, "extra_info": fixture.extra_info,
                **result})


class XdistController:
    """On the xdist controller: record the workers' device results in its BenchmarkSession."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        payload = getattr(report, REPORT_ATTRIBUTE, None)
        if not payload:
            return
        fixture = SimpleNamespace(cprofile_stats=None, has_error=False,
                                  **{k: payload[k] for k in ("name", "fullname", "group", "param",
                                                             "params", "extra_info")})
        self.config._benchmarksession.benchmarks.append(metadata(fixture, payload["options"], payload["data"]))


class StandIn:
    """Without pytest-benchmark, tests that ask for ``benchmark`` skip instead of erroring."""

    @pytest.fixture
    def benchmark(self):
        pytest.skip("pytest-benchmark is not active (not installed, or -p no:benchmark)")
