"""The sysfs meters (INA3221 old and new layouts, RAPL, hwmon ina2xx) against trees
written under a temporary root, in the real layouts."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.power import MeterError, open_meters
from harness.power.energy import summarize
from harness.power.source import LocalSource
from power_helpers import VirtualClock, record_polls, spec_with
from paths import ROOT


def write(root: Path, rel: str, text) -> Path:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(f"{text}\n")
    return p


def old_ina3221(root, rails):
    d = "sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0"
    for k, (name, mw) in enumerate(rails):
        write(root, f"{d}/rail_name_{k}", name)
        write(root, f"{d}/in_power{k}_input", mw)
        write(root, f"{d}/in_current{k}_input", 1)
    (root / "sys/bus/i2c/drivers/ina3221x/bind").write_text("")


def new_ina3221(root, rails, chip="1-0040"):
    d = f"sys/bus/i2c/drivers/ina3221/{chip}/hwmon/hwmon3"
    for k, (name, mv, ma) in enumerate(rails, start=1):
        write(root, f"{d}/in{k}_label", name)
        write(root, f"{d}/in{k}_input", mv)
        write(root, f"{d}/curr{k}_input", ma)
        write(root, f"{d}/in{k + 3}_input", 1)  # shunt voltages: no current file, skipped
    write(root, f"{d}/in7_input", 999)
    write(root, f"{d}/curr7_input", 999)


def one(power, tmp_path, clock=None):
    (m,) = open_meters(spec_with([dict(power, root=str(tmp_path))]), None, clock=clock)
    return m


def polled(power, tmp_path, seconds):
    """A trace of ``seconds`` of virtual time: a read at every interval, whatever the load."""
    clock = VirtualClock()
    return record_polls(one(power, tmp_path, clock), clock, seconds)


def test_ina3221_old_iio_layout_uses_the_input_rail(tmp_path):
    old_ina3221(tmp_path, [("POM_5V_IN", 4000), ("POM_5V_GPU", 1000), ("POM_5V_CPU", 500)])
    trace = polled({"meter": "ina3221", "interval_ms": 10}, tmp_path, 0.305)
    assert len(trace.watts) == 31 + 1  # 0, 10, ..., 300 ms and the read at stop
    assert all(w == pytest.approx(4.0) for w in trace.watts)
    assert set(trace.rails) == {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}


def test_ina3221_new_hwmon_layout_sums_rails_and_skips_nc_and_in7(tmp_path):
    new_ina3221(tmp_path, [("VDD_GPU_SOC", 5000, 600), ("VDD_CPU_CV", 5000, 200), ("NC", 5000, 900)])
    trace = polled({"meter": "ina3221", "interval_ms": 10, "layout": "hwmon"}, tmp_path, 0.305)
    assert set(trace.rails) == {"VDD_GPU_SOC", "VDD_CPU_CV"}
    assert all(w == pytest.approx(4.0) for w in trace.watts)


def test_ina3221_new_layout_with_vdd_in_takes_it_as_total(tmp_path):
    new_ina3221(tmp_path, [("VDD_IN", 5000, 1000), ("VDD_CPU_GPU_CV", 5000, 200), ("VDD_SOC", 5000, 300)])
    trace = polled({"meter": "ina3221", "interval_ms": 10}, tmp_path, 0.205)
    assert trace.watts and all(w == pytest.approx(5.0) for w in trace.watts)


def test_ina3221_absent_is_a_clear_error(tmp_path):
    m = one({"meter": "ina3221"}, tmp_path)
    with pytest.raises(MeterError, match="no INA3221"):
        m.start()


def rapl_tree(root, zones):
    for zone, name, uj, rng in zones:
        write(root, f"sys/class/powercap/{zone}/name", name)
        write(root, f"sys/class/powercap/{zone}/energy_uj", uj)
        write(root, f"sys/class/powercap/{zone}/max_energy_range_uj", rng)


def test_rapl_counts_wrap_around_per_domain(tmp_path):
    rapl_tree(tmp_path, [("intel-rapl:0", "package-0", 262_000_000, 262_143_328_850),
                         ("intel-rapl:0:0", "core", 5, 262_143_328_850),
                         ("intel-rapl:1", "psys", 7, 262_143_328_850)])
    # A small range so the wrap happens in the test.
    write(tmp_path, "sys/class/powercap/intel-rapl:0/max_energy_range_uj", 263_000_000)
    m = one({"meter": "rapl"}, tmp_path)
    m.probe()  # the meter's own first read, without the thread: deterministic
    assert list(m.domains) == ["package-0"]  # psys and subzones are not summed by default
    energy_file = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    totals = []
    for uj in (262_500_000, 262_999_000, 1_000_000, 2_000_000):  # wraps after the 2nd
        energy_file.write_text(f"{uj}\n")
        totals.append(m.read()[0])
    assert totals == pytest.approx([0.5, 0.999, 2.0, 3.0])
    assert m.wraps == 1


def test_rapl_trace_is_a_counter_trace(tmp_path):
    rapl_tree(tmp_path, [("intel-rapl:0", "package-0", 1000, 262_143_328_850)])
    trace = polled({"meter": "rapl", "interval_ms": 10}, tmp_path, 0.205)
    assert trace.method == "counter" and len(trace.joules) == len(trace.t) == 21 + 1
    out = summarize(trace, trace.t[0], trace.t[-1], 10)
    assert out["method"] == "counter" and out["energy_j"] == 0.0


class DeniedSource(LocalSource):
    """A board where energy_uj is root-only (root reads anything, so simulate the refusal)."""

    def read_text(self, path):
        if path.endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", path)
        return super().read_text(path)


def test_rapl_root_only_files_give_a_clear_message(tmp_path):
    rapl_tree(tmp_path, [("intel-rapl:0", "package-0", 1000, 262_143_328_850)])
    m = one({"meter": "rapl"}, tmp_path)
    m.source = DeniedSource(str(tmp_path))
    with pytest.raises(MeterError, match="root-only.*CVE-2020-8694"):
        m.start()


@pytest.fixture
def world_readable_dir():
    """A fresh directory under /tmp that others may enter, removed at the end. Not under
    pytest's basetemp: a pytest starting meanwhile resets /tmp/pytest-of-<user> to 0700 and
    would lock the unprivileged user out of it."""
    path = Path(tempfile.mkdtemp(prefix="harness-rapl-"))
    try:
        os.chmod(path, 0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_rapl_root_only_as_a_real_unprivileged_user(world_readable_dir):
    root = world_readable_dir
    rapl_tree(root, [("intel-rapl:0", "package-0", 1000, 262_143_328_850)])
    os.chmod(root / "sys/class/powercap/intel-rapl:0/energy_uj", 0o400)
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from harness.power.rapl import RaplMeter\n"
            "from harness.power.source import LocalSource\n"
            "from harness.power.base import MeterError\n"
            "m = RaplMeter({'domains': None, 'interval_ms': 100, 'root': %r}, LocalSource(%r))\n"
            "try:\n    m.start()\nexcept MeterError as e:\n    print('MSG', e); sys.exit(3)\n"
            % (str(ROOT), str(root), str(root)))
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if proc.returncode != 3 and ("ModuleNotFoundError" in proc.stderr or "Permission denied" in proc.stderr):
        pytest.skip("the interpreter or worktree is not usable by an unprivileged user here")
    assert proc.returncode == 3, proc.stderr
    assert "root-only" in proc.stdout


def hwmon_tree(root, sensors):
    for h, name, mv, ma, uw in sensors:
        d = f"sys/class/hwmon/{h}"
        write(root, f"{d}/name", name)
        write(root, f"{d}/in1_input", mv)
        write(root, f"{d}/curr1_input", ma)
        if uw is not None:
            write(root, f"{d}/power1_input", uw)
        write(root, f"{d}/update_interval", 2)
    write(root, "sys/class/hwmon/hwmon0/name", "coretemp")


def test_hwmon_ina2xx_power_and_vi(tmp_path):
    hwmon_tree(tmp_path, [("hwmon1", "ina226", 5000, 400, 2_000_000), ("hwmon2", "ina219", 3300, 100, None)])
    trace = polled({"meter": "ina2xx", "interval_ms": 10}, tmp_path, 0.205)
    assert trace.watts and all(w == pytest.approx(2.0 + 0.33) for w in trace.watts)
    assert set(trace.rails) == {"hwmon1", "hwmon2"}
    assert trace.extra["sensors"] == {"hwmon1": "power", "hwmon2": "vi"}
    assert trace.averaging_s == pytest.approx(0.002)
    m2 = one({"meter": "ina2xx", "sensors": ["hwmon1"], "use": "vi"}, tmp_path)
    m2.probe()
    assert m2.read()[0] == pytest.approx(2.0)


def test_hwmon_without_ina_chip_is_a_clear_error(tmp_path):
    write(tmp_path, "sys/class/hwmon/hwmon0/name", "coretemp")
    m = one({"meter": "ina2xx"}, tmp_path)
    with pytest.raises(MeterError, match="found: none"):
        m.start()


@pytest.mark.parametrize("power, tree, missing, found", [
    ({"meter": "ina2xx", "sensors": ["hwmon1", "hwmon9"]},
     lambda root: hwmon_tree(root, [("hwmon1", "ina226", 5000, 400, None), ("hwmon2", "ina219", 3300, 100, None)]),
     "ina2xx hwmon sensor(s) ['hwmon9'] not found under /sys/class/hwmon", "hwmon1, hwmon2"),
    ({"meter": "rapl", "domains": ["package-0", "dram"]},
     lambda root: rapl_tree(root, [("intel-rapl:0", "package-0", 1, 262_143_328_850),
                                   ("intel-rapl:0:0", "core", 1, 262_143_328_850)]),
     "RAPL domain(s) ['dram'] not found under /sys/class/powercap", "package-0, core"),
], ids=["hwmon", "rapl"])
def test_a_named_but_missing_sensor_or_domain_is_named_with_what_was_found(tmp_path, power, tree, missing,
                                                                          found):
    tree(tmp_path)
    with pytest.raises(MeterError) as info:
        one(power, tmp_path).start()
    message = str(info.value)
    assert f"{missing} (read through " in message, message   # only the missing name
    assert message.endswith(f"; found: {found}"), message


def test_a_sysfs_file_that_vanishes_mid_window_leaves_a_gap(tmp_path):
    hwmon_tree(tmp_path, [("hwmon1", "ina226", 5000, 400, 2_000_000)])
    clock = VirtualClock()
    m = one({"meter": "ina2xx", "interval_ms": 10}, tmp_path, clock)
    m.max_consecutive_errors = 10_000
    m.start()
    t0 = clock.time()
    clock.advance(0.305)  # reads at 0, 10, ..., 300 ms
    (tmp_path / "sys/class/hwmon/hwmon1/power1_input").unlink()
    clock.advance(0.4)    # reads at 310, ..., 700 ms fail; so does the one at stop (705)
    trace = m.stop()
    assert trace.started == t0 and trace.stopped - t0 == pytest.approx(0.705, abs=1e-6)
    assert len(trace.t) == 31 and trace.t[-1] - t0 == pytest.approx(0.3, abs=1e-6)
    assert [(a - t0, b - t0) for a, b in trace.gaps] == [(pytest.approx(0.31, abs=1e-6),
                                                           pytest.approx(0.705, abs=1e-6))]
    assert any("FileNotFoundError" in n for n in trace.notes)
    assert any(n.startswith("final read failed") for n in trace.notes)
    out = summarize(trace, trace.started, trace.stopped, 100)
    assert out["energy_per_inference_j"] is None
    assert out["coverage"] == pytest.approx(0.3 / 0.705, abs=1e-5)
    assert len(out["meter_gaps"]) == 1


def test_bad_options_name_file_field_value_and_allowed(tmp_path):
    with pytest.raises(ConfigError) as e:
        open_meters(spec_with([{"meter": "ina2xx", "use": "amps"}]), None)
    assert "devices/board.yaml: power[0].use: expected one of auto, power, vi, got 'amps'" in str(e.value)
    with pytest.raises(ConfigError, match=r"power\[1\]\.meter: expected one of .*rapl.*got 'rapel'"):
        open_meters(spec_with([{"meter": "rapl"}, {"meter": "rapel"}]), None)
    with pytest.raises(ConfigError, match=r"power\[0\]\.intervl_ms.*did you mean 'interval_ms'"):
        open_meters(spec_with([{"meter": "rapl", "intervl_ms": 5}]), None)
    with pytest.raises(ConfigError, match=r"power\[0\]\.interval_ms: expected an integer in 1..10000"):
        open_meters(spec_with([{"meter": "rapl", "interval_ms": 0}]), None)
