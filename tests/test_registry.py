"""The one registry (device kinds, meters, techniques) and the one option-table format:
duplicate names refused, unknown names answered with a "did you mean", every declared
field's error naming the file, the field and what was expected, and docs/options.md
generated from the same tables."""
import pytest
import yaml

from harness import config_fields
from harness.compress import BuildContext, get_technique, technique, technique_registry
from harness.devices import kind_registry, register
from harness.devices.base import Device
from harness.errors import ConfigError
from harness.inventory import parse_device
from harness.power import Meter, meter, meter_registry
from harness.registry import DOCS, Option, Registry, RegistryError, UnknownName, options_markdown


class One:
    pass


class Two:
    pass


def test_a_name_registered_twice_is_refused_naming_both():
    reg = Registry("widget", "harness.test-widgets", {"builtin": "collections:OrderedDict"})
    reg.register("one")(One)
    reg.register("one")(One)        # the same class again (a module imported twice): fine
    with pytest.raises(RegistryError, match=r"widget 'one' is registered twice: by .*One and by .*Two"):
        reg.register("one")(Two)
    with pytest.raises(RegistryError, match=r"widget 'builtin' is already a built-in \(collections:OrderedDict\)"):
        reg.register("builtin")(Two)
    assert reg.get("one") is One and reg.names() == ["builtin", "one"]


def test_the_seams_refuse_a_built_in_name():
    with pytest.raises(RegistryError, match="device kind 'ssh' is already a built-in"):
        register("ssh")(type("MySsh", (Device,), {}))
    with pytest.raises(RegistryError, match="meter 'tegrastats' is registered twice"):
        meter("tegrastats")(type("MyTegrastats", (Meter,), {}))
    with pytest.raises(RegistryError, match="technique 'fp16' is registered twice"):
        technique("fp16")(lambda ctx: None)
    # and what was registered first is still what the name gives
    assert meter_registry.get("tegrastats").__module__ == "harness.power.tegrastats"
    assert get_technique("fp16").params == ("keep_io_types", "op_block_list")


def test_unknown_names_get_the_known_ones_and_a_did_you_mean():
    with pytest.raises(UnknownName, match=r"unknown technique 'prune-magnitud'; did you mean 'prune-magnitude'\?"):
        get_technique("prune-magnitud")
    with pytest.raises(KeyError):   # callers that ask for a KeyError still get one
        meter_registry.get("no-such-meter")
    with pytest.raises(ConfigError, match=r"devices/pi.yaml: kind: expected one of .*ssh.* got 'shh' "
                                          r"\(did you mean 'ssh'\?\)"):
        parse_device({"kind": "shh"}, "devices/pi.yaml", "pi")
    with pytest.raises(ConfigError, match=r"devices/pi.yaml: power\[0\].meter: expected one of .*, got 'tegrastat' "
                                          r"\(did you mean 'tegrastats'\?\)"):
        parse_device({"kind": "local", "power": [{"meter": "tegrastat"}]}, "devices/pi.yaml", "pi")


# A valid section of each built-in kind, to which one bad field is added.
VALID = {"local": {}, "ssh": {"host": "pi"}, "serial": {"port": "socket://127.0.0.1:1"},
         "labgrid": {"place": "p1"}}
REQUIRED_METER_FIELDS = {"lpm01a": {"port": "/dev/null"}, "serial_stream": {"port": "/dev/null"}}
# a value of the wrong type for each declared type
WRONG = {int: "many", float: "fast", str: 12, bool: "yes", list: "one", dict: [1], (int, float): "x",
         (str, list): 3}


def _scalar_cases(table):
    for key, option in table.items():
        if option.types in WRONG:
            yield key, option


def _expected(option) -> str:
    return config_fields.describe(option.types)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_declared_field_of_a_kind_names_file_field_and_expected(kind):
    cls = kind_registry.get(kind)
    assert cls.OPTIONS, f"{kind} declares no options"
    for key, option in _scalar_cases(cls.OPTIONS):
        section = {**VALID[kind], key: WRONG[option.types]}
        with pytest.raises(ConfigError) as info:
            parse_device({"kind": kind, kind: section}, "devices/b.yaml", "b")
        assert str(info.value).startswith(f"devices/b.yaml: {kind}.{key}: expected {_expected(option)}, got "), key
        if option.minimum is not None and option.types in (int, float):
            with pytest.raises(ConfigError, match=rf"devices/b.yaml: {kind}\.{key}: expected .* in "):
                parse_device({"kind": kind, kind: {**VALID[kind], key: option.minimum - 1}}, "devices/b.yaml", "b")
    for section, table in cls.SECTIONS.items():
        with pytest.raises(ConfigError, match=rf"devices/b.yaml: {kind}\.{section}\.typo: unknown field"):
            parse_device({"kind": kind, kind: {**VALID[kind], section: {"typo": 1}}}, "devices/b.yaml", "b")


def test_every_declared_field_of_a_meter_names_file_field_and_expected():
    for name, cls in meter_registry.items():
        base = {"meter": name, **REQUIRED_METER_FIELDS.get(name, {})}
        for key, option in _scalar_cases(cls.OPTIONS):
            entry = {**base, key: WRONG[option.types]}
            with pytest.raises(ConfigError) as info:
                parse_device({"kind": "local", "power": [entry]}, "devices/b.yaml", "b")
            assert str(info.value).startswith(f"devices/b.yaml: power[0].{key}: expected {_expected(option)}, got "), \
                (name, key)
        if cls.OPTIONS:
            with pytest.raises(ConfigError, match=r"power\[0\]\.intervall: unknown field"):
                parse_device({"kind": "local", "power": [{**base, "intervall": 1}]}, "devices/b.yaml", "b")


def test_every_declared_parameter_of_a_technique_names_manifest_field_and_expected(tmp_path):
    where = "models/x.yaml: variants[0] (v)"
    checked = 0
    for name, t in technique_registry.items():
        for key, option in t.options.items():   # every parameter declared: a type and what it means
            assert option.types is not object and option.help, (name, key)
        for key, option in _scalar_cases(t.options):
            ctx = BuildContext(base=tmp_path / "b.onnx", out=tmp_path / "o.onnx", params={key: WRONG[option.types]},
                               source=where, options=t.options)
            with pytest.raises(ConfigError) as info:
                ctx.param(key)
            assert str(info.value).startswith(f"{where}: params.{key}: expected {_expected(option)}, got "), (name, key)
            checked += 1
    assert checked > 28


def test_a_given_default_is_the_declared_one_and_a_copy(tmp_path):
    t = get_technique("fp16")
    ctx = BuildContext(base=tmp_path / "b", out=tmp_path / "o", params={}, source="m.yaml", options=t.options)
    blocked = ctx.param("op_block_list")
    blocked.append("Conv")
    assert ctx.param("op_block_list") == [] and ctx.param("keep_io_types") is True


def test_capabilities_power_follows_the_meters_and_a_name_without_one_is_refused():
    spec = parse_device({"kind": "local", "power": [{"meter": "rapl"}]}, "devices/b.yaml", "b")
    assert spec.capabilities.power == ("rapl",) and spec.capabilities.lacks(power="rapl") is None
    with pytest.raises(ConfigError, match=r"devices/b.yaml: capabilities.power\[0\]: expected a meter the device "
                                          r"declares \(rapl\), got 'tegrastats'"):
        parse_device({"kind": "local", "capabilities": {"power": ["tegrastats"]}, "power": [{"meter": "rapl"}]},
                     "devices/b.yaml", "b")
    with pytest.raises(ConfigError, match=r"capabilities.power\[0\]: expected a meter the device declares \(none\)"):
        parse_device({"kind": "local", "capabilities": {"power": ["tegrastats"]}}, "devices/b.yaml", "b")


def test_an_mcu_energy_monitor_counts_as_a_meter_of_the_device():
    serial = {"port": "socket://127.0.0.1:1", "mode": "energy",
              "energy_monitor": {"meter": "lpm01a", "port": "/dev/null", "events": True}}
    spec = parse_device({"kind": "serial", "serial": serial, "capabilities": {"power": ["lpm01a"]}},
                        "devices/b.yaml", "b")
    assert spec.capabilities.power == ("lpm01a",)


def test_option_docs_are_generated_from_the_tables_and_up_to_date():
    text = options_markdown()
    assert DOCS.read_text() == text, "docs/options.md is stale: run `python -m harness.registry --write`"
    # every built-in kind, meter and technique has its section, every declared field its row;
    # what a third party (or another test) registered is not the harness's page
    assert "bench-psu-protocol-test" not in text and len(kind_registry.builtin_items()) == 4
    for registry, prefix in ((kind_registry, "{name}."), (meter_registry, ""), (technique_registry, "params.")):
        for name, obj in registry.builtin_items():
            assert f"### `{name}`" in text
            table = obj.options if registry is technique_registry else obj.OPTIONS
            for key in table:
                assert f"| `{prefix.format(name=name)}{key}` |" in text, (name, key)


def test_option_rows_say_type_default_range_and_help():
    row = [line for line in options_markdown().splitlines() if line.startswith("| `ssh.port` |")]
    assert row == ["| `ssh.port` | an integer | - | 1..65535 | from ~/.ssh/config, else 22 |"]
    option = Option(list, ["a", "b"], items=str, help="x")
    assert (option.type_words(), option.default_words()) == ("a list of strings", "`[a, b]`")


def test_repo_device_files_still_load():
    from paths import ROOT

    for path in sorted((ROOT / "devices").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        parse_device(data, path, path.stem)


def _dist(tmp_path, monkeypatch, entry_points: str):
    """A third-party distribution on sys.path declaring these entry points (what pip installs)."""
    info = tmp_path / "thirdparty_kinds-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-kinds\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    (tmp_path / "thirdparty_kinds.py").write_text(
        "from harness.devices.local import LocalDevice\n\nclass Board(LocalDevice):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_kind_from_an_entry_point_is_named_by_it(tmp_path, monkeypatch):
    _dist(tmp_path, monkeypatch, "[harness.devices]\nthirdparty-board = thirdparty_kinds:Board\n")
    assert "thirdparty-board" in kind_registry.names()
    spec = parse_device({"kind": "thirdparty-board"}, "devices/b.yaml", "b")
    assert kind_registry.get("thirdparty-board").kind == "thirdparty-board" and spec.kind == "thirdparty-board"


def test_an_entry_point_taking_a_built_in_name_is_refused(tmp_path, monkeypatch):
    _dist(tmp_path, monkeypatch, "[harness.devices]\nssh = thirdparty_kinds:Board\n")
    with pytest.raises(RegistryError, match=r"entry point 'ssh' \(thirdparty_kinds:Board\) of group "
                                            r"harness.devices names a device kind that is already registered"):
        kind_registry.names()


def test_the_docs_do_not_depend_on_which_module_was_imported_first():
    """A technique module imported directly (as a test or a user script does) registers before
    the registry imports its list; it is still the harness's own and still in the docs."""
    import subprocess
    import sys

    from paths import ROOT

    code = ("import harness.compress.deep_compression\n"
            "from pathlib import Path\nfrom harness.registry import options_markdown\n"
            "print(Path('docs/options.md').read_text() == options_markdown())")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "True", done.stdout + done.stderr
