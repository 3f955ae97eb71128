"""Device YAML validation: every error names the file, the field, the value, what is allowed."""
from dataclasses import replace

import pytest

from harness.errors import ConfigError
from harness.inventory import Inventory, load_device_file
from device_files import assert_refused, write_device


def test_repo_local_yaml_is_valid_and_matches_the_builtin(repo, tmp_path):
    # The harness installed elsewhere (no devices/ directory) measures exactly as the
    # repository's local.yaml says: same capabilities, settings, description.
    spec = Inventory(repo / "devices").get("local")
    builtin = Inventory(None).get("local")
    assert spec.source.endswith("local.yaml") and builtin.source == "<built-in local device>"
    assert replace(spec, source=builtin.source) == builtin


@pytest.mark.parametrize("text, field, words", [
    ("kind: local\nsetings: {threads: 2}\n", "setings", "did you mean 'settings'"),
    ("kind: local\nsettings: {threads: two}\n", "settings.threads", "expected an integer, got 'two'"),
    ("kind: lokal\n", "kind", "expected one of"),
    ("kind: local\ncapabilities: {runtimes: [tensorflow]}\n", "capabilities.runtimes[0]", "got 'tensorflow'"),
    ("kind: local\nsettings: {min_iterations: 10, max_iterations: 5}\n", "settings.max_iterations", "at least"),
    ("kind: local\nsettings: {optimization: max}\n", "settings.optimization", "one of disable"),
    ("kind: local\ntimeout_s: -3\n", "timeout_s", "in 1.0..inf"),
    ("kind: local\nlocal: {workdri: /tmp}\n", "local.workdri", "did you mean 'workdir'"),
    ("kind: local\npower: [rapl]\n", "power[0]", "'meter' name"),
    ("description: no kind\n", "kind", "missing"),
    ("- just\n- a list\n", "(top level)", "a mapping"),
    ("kind: local\nname: other\n", "name", "file's stem"),
])
def test_bad_yaml_names_file_field_and_value(tmp_path, text, field, words):
    assert_refused(write_device(tmp_path, "board", text), field, words)


def test_yaml_syntax_error_gives_line(tmp_path):
    path = write_device(tmp_path, "board", "kind: local\nsettings: {threads: 1\n")
    with pytest.raises(ConfigError, match=r"board.yaml: line \d+, column \d+: .*expected valid YAML"):
        load_device_file(path)


def test_unknown_device_lists_known_ones(tmp_path):
    write_device(tmp_path, "rpi5", "kind: local\n")
    write_device(tmp_path, "jetson", "kind: local\n")
    with pytest.raises(ConfigError) as info:
        Inventory(tmp_path).get("jetsn")
    assert "jetson, local, rpi5" in str(info.value)
    assert "did you mean 'jetson'" in str(info.value)


def test_missing_inventory_directory(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Inventory(tmp_path / "nope")


def test_capability_lacks_reason(tmp_path):
    spec = load_device_file(write_device(tmp_path, "b", "kind: local\ncapabilities: {runtimes: [onnxruntime], providers: [CPUExecutionProvider]}\n"))
    assert spec.capabilities.lacks(runtime="onnxruntime") is None
    assert "needs execution provider 'CUDAExecutionProvider'" in spec.capabilities.lacks(provider="CUDAExecutionProvider")
    assert "power source 'nvml'" in spec.capabilities.lacks(power="nvml")
    # overrides from the command line keep the rest
    assert spec.with_settings(min_duration_s=0.1, warmup=None).settings["min_duration_s"] == 0.1


def test_power_meter_typos_fail_at_load(tmp_path):
    path = write_device(tmp_path, "jetson", "kind: local\npower: [{meter: tegrastat}]\n")
    with pytest.raises(ConfigError, match=r"jetson.yaml: power\[0\].meter: expected one of .*tegrastats"):
        load_device_file(path)
    path = write_device(tmp_path, "jetson", "kind: local\npower: [{meter: tegrastats, interval_ms: fast}]\n")
    with pytest.raises(ConfigError, match=r"jetson.yaml: power\[0\].interval_ms"):
        load_device_file(path)


def test_the_runners_own_defaults_are_the_inventorys(identity_model):
    """The runner stays one standalone file, so it keeps its own defaults for a hand-written
    spec; the inventory passes every setting anyway, and the two must not drift apart."""
    from harness.ondevice import runner
    from harness.inventory import SETTINGS_DEFAULTS

    used = runner.measure({"model": str(identity_model)})["settings"]
    shared = sorted(set(used) & set(SETTINGS_DEFAULTS))
    assert {"warmup", "min_duration_s", "min_iterations", "max_iterations"} <= set(shared)
    assert {k: used[k] for k in shared} == {k: SETTINGS_DEFAULTS[k] for k in shared}
