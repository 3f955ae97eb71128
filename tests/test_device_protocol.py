"""The Device protocol's defaults: a kind that implements only connect, deploy, run and info
(the abstract four) goes through the session, the power code and the CLI like a built-in
one, and no caller probes a device for what it has or branches on its kind."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import variant_build
from harness.cli import main
from harness.devices import register
from harness.devices.base import Device
from harness.devices.local import RUNNER, decode_runner_output
from harness.errors import ConfigError
from harness.inventory import Inventory, load_device_file
from harness.power import Meter, MeterError, PowerTrace, meter, open_meters
from harness.session import BenchSession
from harness.store import Store
from onnx_models import single_op_model
from paths import ROOT

KIND = "bare-protocol-test"


@register(KIND)
class BareDevice(Device):
    """Only the abstract methods: the real runner in a subprocess, files used in place."""

    def connect(self):
        self.connected = True

    def deploy(self, artifact):
        return str(Path(artifact).resolve())

    def run(self, spec):
        spec_path = Path(spec["model"]).with_suffix(".spec.json")
        spec_path.write_text(json.dumps(spec))
        done = subprocess.run([sys.executable, str(RUNNER), str(spec_path)], capture_output=True, text=True,
                              timeout=self.spec.timeout_s)
        return decode_runner_output(self.name, done.stdout, done.stderr, done.returncode)

    def info(self):
        return {"kind": self.spec.kind, "bare": True}


@meter("bench-psu-protocol-test")
class BenchSupply(Meter):
    """A controller-side meter (a bench supply): a constant 1.5 W, stamped on the host clock."""

    nominal_rate_hz = 50.0

    def start(self):
        self.t0 = self.clock.time()

    def stop(self):
        t1 = self.clock.time()
        n = max(int((t1 - self.t0) * 50) + 2, 3)
        step = (t1 - self.t0) / (n - 1)
        return PowerTrace(source=self.label, t=[self.t0 + i * step for i in range(n)], watts=[1.5] * n,
                          nominal_rate_hz=50.0)


def lab(tmp_path, power=""):
    (tmp_path / "models").mkdir()
    single_op_model(tmp_path / "models" / "base.onnx", op="Relu")
    (tmp_path / "models" / "tiny.yaml").write_text(
        "name: tiny\nbase: base.onnx\nvariants:\n  - {name: fp32, technique: fp32}\n")
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "bare.yaml").write_text(
        f"kind: {KIND}\ncapabilities: {{runtimes: [onnxruntime]}}\n"
        "settings: {min_duration_s: 0.02, min_iterations: 20, warmup: 1, rounds: 2}\n" + power)
    return tmp_path


def test_a_kind_overriding_nothing_is_measured_by_the_session_with_a_controller_meter(tmp_path):
    path = lab(tmp_path, power="power: [{meter: bench-psu-protocol-test}]\n")
    manifests = variant_build.load_manifests(path / "models")
    session = BenchSession(Inventory(path / "devices"), Store(f"sqlite:///{path / 'store.sqlite'}"), manifests,
                      cache=path / "cache")
    session.select(variant_build.select(manifests, None))
    try:
        m = session.measure("bare", manifests[0], manifests[0].recipe("fp32"))
    finally:
        session.close()
    assert m.latency.rounds == 2
    assert m.provenance["device_info"] == {"kind": KIND, "bare": True}
    # the meter's window was placed with the default clock offset (same clock: 0)
    assert m.energy["source"] == "bench-psu-protocol-test" and m.energy["avg_power_w"] == pytest.approx(1.5)
    assert m.energy["energy_per_inference_j"] > 0


def test_a_kind_without_a_meter_source_refuses_on_board_meters_by_name(tmp_path):
    spec = load_device_file(lab(tmp_path, power="power: [{meter: rapl}]\n") / "devices" / "bare.yaml")
    with pytest.raises(MeterError, match=rf"bare.yaml: device kind '{KIND}' cannot host on-board meters"):
        open_meters(spec, BareDevice(spec))


def test_a_meter_of_the_controllers_own_hardware_needs_a_controller_kind(tmp_path):
    path = lab(tmp_path, power="power: [{meter: nvml}]\n")
    with pytest.raises(ConfigError, match=r"bare.yaml: power\[0\].meter: expected a meter that can read"):
        load_device_file(path / "devices" / "bare.yaml")


def test_cli_check_clean_and_list_use_the_defaults(tmp_path, capsys):
    path = lab(tmp_path)
    common = ["--devices-dir", str(path / "devices"), "--models-dir", str(path / "models")]
    assert main(common + ["devices", "check", "bare"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[:out.index("}") + 1]) == {"kind": KIND, "bare": True}
    assert "stability: bare reports no machine state" in out
    assert main(common + ["devices", "clean", "bare"]) == 0
    assert capsys.readouterr().out.strip() == f"bare: a {KIND} device keeps no harness work directory"
    assert main(common + ["devices", "list"]) == 0
    assert any(line.split()[:2] == ["bare", KIND] for line in capsys.readouterr().out.splitlines())


def test_prepare_commands_on_a_kind_that_cannot_run_them_are_refused_by_name(tmp_path):
    spec = load_device_file(lab(tmp_path) / "devices" / "bare.yaml")
    with pytest.raises(Exception, match=rf"bare: a {KIND} device cannot run prepare/restore commands"):
        BareDevice(spec).execute(["true"])


# Who may ask a device what: everything outside harness/devices/ uses the protocol.
OUTSIDE = [p for p in (ROOT / "harness").rglob("*.py") if "devices" not in p.relative_to(ROOT / "harness").parts]


def _offences(path: Path) -> list:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        # getattr(device, ...) / hasattr(device, ...): probing a device for a method
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                and node.args and isinstance(node.args[0], ast.Name) and "device" in node.args[0].id):
            found.append(f"{path.name}:{node.lineno}: {node.func.id}({node.args[0].id}, ...)")
        # spec.kind == "ssh", kind != "local": a branch on a built-in kind
        if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and c.value in
                                                 ("local", "ssh", "serial", "labgrid")
                                                 for c in [node.left, *node.comparators]):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "kind" or isinstance(s, ast.Name) and s.id == "kind"
                   for s in sides):
                found.append(f"{path.name}:{node.lineno}: a comparison with a kind name")
        # link._client: the SSH link's private client
        if isinstance(node, ast.Attribute) and node.attr in ("_client", "_harness_jump"):
            found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    return found


def test_no_caller_outside_devices_probes_a_device_or_branches_on_its_kind():
    assert OUTSIDE, "harness/ not found"
    assert [o for p in OUTSIDE for o in _offences(p)] == []


def test_the_scan_finds_what_it_forbids(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(device, spec, link):\n    getattr(device, 'clock_offset_s', None)\n"
                   "    if spec.kind != 'ssh':\n        pass\n    link._client.get_transport()\n")
    assert len(_offences(bad)) == 3
