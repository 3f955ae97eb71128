"""The serial kind's own pieces, without a board: its state exists from construction, the
windows are planned by one pure rule, and a window's time budget travels as an argument
(the DUT client is never changed to pass it)."""
import pytest

from harness.devices import open_device
from harness.devices.serial import RunPlan
from harness.inventory import parse_device
from harness.mcu.dut import DutClient


def spec(**serial):
    return parse_device({"kind": "serial", "serial": {"port": "socket://127.0.0.1:1", **serial}},
                        "devices/m.yaml", "m")


def test_a_device_never_connected_reports_and_closes():
    device = open_device(spec(baud=9600))
    info = device.info()
    assert info["kind"] == "serial" and info["baud"] == 9600 and info["dut_name"] is None
    device.close()
    device.close()   # twice: still nothing to release


def test_windows_meet_both_minimums_within_the_cap():
    plan = RunPlan.of({"warmup": 3, "min_iterations": 50, "max_iterations": 10_000, "min_duration_s": 1.0}, 5)
    assert (plan.warmup, plan.windows) == (3, 5)
    assert plan.per_window(per_inference_us=1000.0) == 200     # 1 s over 5 windows of 1 ms inferences
    assert plan.per_window(per_inference_us=1e6) == 10         # slow: the count minimum, 50 over 5
    assert plan.per_window(per_inference_us=1.0) == 2000       # fast: the cap, 10000 over 5
    assert RunPlan.of({}, 5).max_iterations >= RunPlan.of({}, 5).min_iterations == 1


class Recorder(DutClient):
    """A DUT client whose exchanges are recorded instead of sent (no port)."""

    def __init__(self):
        super().__init__(port=None, timeout_s=2.0, us_per_inference_budget=7.0)
        self.timeouts = []

    def command(self, command, timeout_s=None):
        self.timeouts.append(timeout_s)
        raise RuntimeError("recorded")


def test_the_window_budget_is_an_argument_of_infer():
    client = Recorder()
    with pytest.raises(RuntimeError):
        client.infer(10, 0, us_per_inference=1e6)
    with pytest.raises(RuntimeError):
        client.infer(10, 0)
    assert client.timeouts == [pytest.approx(2.0 + 10.0), pytest.approx(2.0 + 10 * 7.0 / 1e6)]


def test_the_serial_kind_sizes_each_window_without_changing_the_client():
    device = open_device(spec())
    device.dut = client = Recorder()
    with pytest.raises(RuntimeError):
        device.infer_window(100, per_inference_us=1000.0)
    # ten times the expected duration (+1 us per inference) on top of the reply timeout
    assert client.timeouts == [pytest.approx(2.0 + 100 * (10 * 1000.0 + 1) / 1e6)]
    assert client.us_per_inference_budget == 7.0
