"""harness.pytestplugin.benchmark_bridge without a device: a Measurement becomes a pytest-benchmark result."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from pytest_benchmark.fixture import FixtureAlreadyUsed

from fake_measurements import fake_measurement
from harness.measurement import Measurement
from harness.pytestplugin import benchmark_bridge as bridge


def measurement(samples_ns, device="rpi5", energy=None) -> Measurement:
    return fake_measurement(
        device=device, variant="int8-static", samples_ns=samples_ns, rss_kb=50_000, size_bytes=9000,
        model_sha256="ab" * 32, energy=energy, run_id="run-1",
        settings={"min_duration_s": 1.0, "min_iterations": 50, "warmup": 10, "runtime": "onnxruntime",
                  "model": "/tmp/x.onnx"},
        provenance={"device": {"name": device, "kind": "ssh", "options": {"host": "rpi5.lab"}},
                    "board": {"cpu": "Cortex-A76", "mem_total_kb": 8_000_000},
                    "runtime": {"name": "onnxruntime", "version": "1.20"},
                    "controller": {"hostname": "ci-runner"}})


class FakeFixture(SimpleNamespace):
    """The attributes of pytest_benchmark.fixture.BenchmarkFixture that the bridge touches."""

    __hash__ = object.__hash__   # one fixture per test, as pytest-benchmark's (SimpleNamespace's is None)

    def __init__(self, disabled=False, group=None):
        self.recorded = []
        super().__init__(name="test_device[rpi5-digits-cnn/int8-static]",
                         fullname="suites/test_benchmark.py::test_device[rpi5-digits-cnn/int8-static]",
                         group=group, param="rpi5-digits-cnn/int8-static",
                         params={"device_name": "rpi5", "variant_case": (object(), object())},
                         extra_info={}, cprofile_stats=None, disabled=disabled, has_error=False,
                         stats=None, _mode=None, _add_stats=self.recorded.append)


@pytest.mark.parametrize("n", [1, 2, 51, 1000])
def test_samples_fill_the_stats_and_the_median_is_the_harness_median(n):
    samples = np.random.default_rng(n).integers(1_000, 2_000_000, size=n).tolist()
    m = measurement(samples)
    fixture = FakeFixture()
    bridge.record(fixture, m)
    assert fixture.recorded == [fixture.stats]
    stats = fixture.stats.stats
    assert stats.rounds == n and fixture.stats.iterations == 1
    assert stats.data == pytest.approx([ns / 1e9 for ns in samples], rel=1e-15)
    assert stats.median * 1e3 == pytest.approx(m.latency.median_ms, rel=1e-12)
    assert stats.min * 1e3 == pytest.approx(m.latency.min_ms, rel=1e-12)
    assert stats.mean * 1e3 == pytest.approx(m.latency.mean_ms, rel=1e-9)


def test_group_name_params_extra_info_and_options():
    fixture = FakeFixture()
    bridge.record(fixture, measurement([1000, 2000, 3000],
                                       energy={"mj_per_inference": 0.5, "n_samples": np.int64(40)}))
    data = fixture.stats.as_dict(include_data=False)
    json.dumps(data)  # storable as is
    assert data["group"] == "rpi5"
    assert data["params"] == {"device_name": "rpi5", "variant_case": "digits-cnn/int8-static"}
    info = data["extra_info"]
    assert info["device"] == "rpi5" and info["variant"] == "digits-cnn/int8-static"
    assert info["model_sha256"] == "ab" * 32
    assert info["memory"]["peak_rss_kb"] == 50_000
    assert info["energy"] == {"mj_per_inference": 0.5, "n_samples": 40}  # numbers stay numbers
    assert info["accuracy"] == 0.97 and info["board"]["cpu"] == "Cortex-A76"
    assert "controller" not in json.dumps(info) and "rpi5.lab" not in json.dumps(info)
    assert data["options"]["timer"] == bridge.DEVICE_TIMER
    assert data["options"]["min_duration_s"] == 1.0 and "model" not in data["options"]


def test_an_explicit_benchmark_group_wins():
    fixture = FakeFixture(group="nightly")
    bridge.record(fixture, measurement([1000, 2000]))
    assert fixture.stats.group == "nightly"


def test_disabled_records_nothing_and_a_second_use_fails():
    fixture = FakeFixture(disabled=True)
    bridge.record(fixture, measurement([1000, 2000]))
    assert fixture.recorded == [] and fixture.stats is None
    assert fixture._mode  # used: pytest-benchmark does not warn "fixture was not used"

    fixture = FakeFixture()
    bridge.record(fixture, measurement([1000, 2000]))
    with pytest.raises(FixtureAlreadyUsed):
        bridge.record(fixture, measurement([1000, 2000]))
    assert len(fixture.recorded) == 1


def test_machine_info_lists_the_runs_devices_publicly():
    spec = SimpleNamespace(public=lambda: {"name": "rpi5", "kind": "ssh", "options": {"host": "rpi5.lab"}})
    state = SimpleNamespace(device_names=["rpi5"], inventory=SimpleNamespace(get=lambda name: spec))
    info = {"node": "ci-runner"}
    bridge.MachineInfo(lambda: state).pytest_benchmark_update_machine_info(config=None, machine_info=info)
    assert info == {"node": "ci-runner", "harness_devices": {"rpi5": spec.public()}}


class FakeConfig:
    def __init__(self, worker=False, **options):
        self.options = {"benchmark_disable": False, "benchmark_enable": False, "dist": "no", **options}
        self.registered = []
        self.pluginmanager = SimpleNamespace(hasplugin=lambda name: True,
                                             register=lambda plugin, name: self.registered.append(name))
        if worker:
            self.workerinput = {}

    def getoption(self, name, default=None):
        return self.options.get(name, default)


@pytest.mark.parametrize("config, plugins", [
    (FakeConfig(), ["harness-benchmark-bridge"]),
    (FakeConfig(dist="load"), ["harness-benchmark-bridge", "harness-benchmark-xdist-controller"]),
    (FakeConfig(worker=True, dist="load"), ["harness-benchmark-bridge", "harness-benchmark-xdist-worker"]),
    (FakeConfig(worker=True, dist="load", benchmark_disable=True), ["harness-benchmark-bridge"]),
    (FakeConfig(dist="load", benchmark_disable=True), ["harness-benchmark-bridge"]),
], ids=["plain", "xdist-controller", "xdist-worker", "worker-disabled", "controller-disabled"])
def test_xdist_hand_over_only_when_benchmarks_are_wanted(config, plugins):
    bridge.register_plugins(config)
    assert config.registered == plugins


def test_a_worker_result_becomes_the_same_benchmark_on_the_controller():
    samples = [1000, 5000, 3000, 2000]
    worker_fixture = FakeFixture(disabled=True)  # pytest-benchmark disables itself on workers
    bridge.record(worker_fixture, measurement(samples))
    report = SimpleNamespace()
    item = SimpleNamespace(funcargs={"benchmark": worker_fixture})
    hook = bridge.XdistWorker().pytest_runtest_makereport(item, SimpleNamespace(when="call"))
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(SimpleNamespace(get_result=lambda: report))
    payload = json.loads(json.dumps(report.harness_benchmark))  # what crosses the wire

    session = SimpleNamespace(benchmarks=[])
    bridge.XdistController(SimpleNamespace(_benchmarksession=session)).pytest_runtest_logreport(
        SimpleNamespace(**{bridge.REPORT_ATTRIBUTE: payload}))
    local = FakeFixture()
    bridge.record(local, measurement(samples))
    [remote] = session.benchmarks
    assert remote.as_dict() == local.stats.as_dict()
