"""The lab inventory: devices/*.yaml -> validated DeviceSpec.

Validation happens here, once, at the door: every error names the file, the field, the
bad value and what is allowed. Kind-specific sections (``ssh:``, ``serial:``) are checked
by the device class registered for that kind.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import names, config_fields, yamlfile
from .errors import ConfigError
from .validity import Thresholds

KNOWN_RUNTIMES = ("onnxruntime", "litert", "tflite_runtime", "mcu", "torch")
SETTINGS_DEFAULTS = {
    "threads": 1,
    "inter_threads": 1,
    "warmup": 10,
    "min_duration_s": 1.0,
    "min_iterations": 50,
    "max_iterations": 200000,
    "optimization": "all",
    "cpu_arena": True,
    # Rounds per measurement: each round visits every variant once, in a shuffled order
    # (docs/measurement.md); the duration and counts above are split over the rounds. A kind
    # may default otherwise (an MCU's MLPerf windows already are rounds).
    "rounds": 3,
    # A per-operator profile (harness/profile.py) from a separate pass after the last round's
    # timed loop, and the device's measured peak: opt-in, so default suites are not slower.
    "profile": False,
    # How far the device's top-1 may differ from the host's beyond one sample of the
    # evaluation set, in points (harness/accuracy.py): other CPUs' kernels flip borderline samples.
    "accuracy_tolerance_pt": 0.5,
}
# GPU settings (docs/gpu.md), passed to the runner only when the YAML sets them: the torch
# device, whether inputs live on the GPU or are copied every iteration, whether the timer
# waits for the GPU, which GPU NVML reads, TensorRT's engine cache directory on the board.
GPU_SETTINGS = ("device", "io", "sync", "gpu_index", "trt_engine_cache_dir")
TORCH_DEVICE = re.compile(r"^(cpu|cuda|cuda:[0-9]+)$")
TOP_LEVEL = ("name", "kind", "description", "python", "capabilities", "settings", "timeout_s",
             "power", "tags", "emulated", "emulation", "validity", "prepare", "restore", "peak")
# what an emulated device's times are: an instruction-counted guest clock (QEMU -icount: no
# host load moves it) or the wall clock of an emulated CPU (qemu-user: 10-500x slower, and
# moved by the host's load like any wall clock)
EMULATIONS = ("guest-time", "wall-clock")

# Used when the inventory directory has no local.yaml (e.g. the harness installed elsewhere).
BUILTIN_LOCAL = {
    "kind": "local",
    "description": "This machine, the runner in a fresh subprocess per measurement",
    "capabilities": {"runtimes": ["onnxruntime", "litert"], "providers": ["CPUExecutionProvider"]},
    "validity": {"remeasure": True},   # as devices/local.yaml: one more try before a budget judges
}


@dataclass(frozen=True)
class Capabilities:
    runtimes: tuple = ()
    providers: tuple = ()
    power: tuple = ()

    def lacks(self, runtime=None, provider=None, power=None) -> str | None:
        """The reason a test needing this capability must skip, or None."""
        for what, want, have in (("runtime", runtime, self.runtimes),
                                 ("execution provider", provider, self.providers),
                                 ("power source", power, self.power)):
            if want is not None and want not in have:
                return f"needs {what} {want!r}; the device declares {', '.join(have) or 'none'}"
        return None


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    kind: str
    source: str
    description: str = ""
    python: str | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    settings: dict = field(default_factory=lambda: dict(SETTINGS_DEFAULTS))
    timeout_s: float = 600.0
    power: tuple = ()
    tags: tuple = ()
    emulated: bool = False
    emulation: str | None = None   # one of EMULATIONS when emulated
    options: dict = field(default_factory=dict)  # the kind's own section, checked by its driver
    validity: Thresholds = field(default_factory=Thresholds)
    # argv lists run on the device before a campaign (e.g. a performance governor) and after it
    prepare: tuple = ()
    restore: tuple = ()
    peak: dict | None = None   # a datasheet peak, shown beside the measured one (harness/profile_peak.py)

    def with_settings(self, **overrides) -> "DeviceSpec":
        merged = dict(self.settings)
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return replace(self, settings=merged)

    def public(self) -> dict:
        """What may go into provenance, the store and reports: no secrets (options are the
        driver's to filter, through its ``public_options``)."""
        from .devices import device_class

        return {
            "name": self.name, "kind": self.kind, "description": self.description,
            "capabilities": {"runtimes": list(self.capabilities.runtimes),
                             "providers": list(self.capabilities.providers),
                             "power": list(self.capabilities.power)},
            "tags": list(self.tags), "emulated": self.emulated, "emulation": self.emulation,
            "options": device_class(self.kind).public_options(self.options),
            "validity": self.validity.to_dict(),
            "prepare": [list(a) for a in self.prepare], "restore": [list(a) for a in self.restore],
        }


def parse_device(data, source, default_name: str) -> DeviceSpec:
    from .devices import device_class

    kind = _checked_kind(source, data)
    name = _checked_name(source, data, default_name)
    runtimes, providers, declared_power = _capability_fields(source, data)
    raw_settings = config_fields.get(source, "", data, "settings", dict, {})
    settings = _typed_settings(source, raw_settings)
    driver = device_class(kind)
    if "rounds" not in raw_settings:
        settings["rounds"] = driver.default_rounds   # a kind may default otherwise (an MCU's windows)
    _check_counts(source, settings)
    power = _power_entries(source, kind, data)

    emulated = bool(config_fields.get(source, "", data, "emulated", bool, False) or data.get("emulation"))
    options = driver.validate_options(config_fields.get(source, "", data, kind, dict, {}), source)
    meters = tuple(dict.fromkeys([entry["meter"] for entry in power] + list(driver.meters_in_options(options))))
    capabilities = Capabilities(runtimes=runtimes, providers=providers,
                                power=_power_capability(source, declared_power, meters))
    return DeviceSpec(
        name=name, kind=kind, source=str(source),
        description=config_fields.get(source, "", data, "description", str, ""),
        python=config_fields.get(source, "", data, "python", str, None),
        capabilities=capabilities, settings=settings,
        timeout_s=config_fields.get(source, "", data, "timeout_s", float, 600.0, minimum=1.0),
        power=tuple(power),
        tags=tuple(config_fields.get_list(source, "", data, "tags", str)),
        emulated=emulated,
        emulation=(config_fields.get(source, "", data, "emulation", str, None, choices=EMULATIONS)
                   or (driver.default_emulation if emulated else None)),
        options=options,
        validity=Thresholds.parse(source, config_fields.get(source, "", data, "validity", dict, {})),
        prepare=_commands(source, data, "prepare"),
        restore=_commands(source, data, "restore"),
        peak=_datasheet_peak(source, data),
    )


def _checked_kind(source, data) -> str:
    """The device's kind, once data is a mapping of known top-level fields for that kind."""
    from .devices import kind_registry, known_kinds

    if not isinstance(data, dict):
        raise ConfigError(source, "(top level)", "a mapping of device fields", type(data).__name__)
    kind = config_fields.get(source, "", data, "kind", str, required=True)
    if kind not in known_kinds():
        expected, hint = kind_registry.expected(kind)
        raise ConfigError(source, "kind", expected, kind, hint)
    config_fields.check_keys(source, "", data, TOP_LEVEL + (kind,), required=("kind",))
    return kind


def _checked_name(source, data: dict, default_name: str) -> str:
    # The name keys leases, stores, reports and test ids: one safe alphabet (harness.names).
    names.check_name(source, "name (the file's stem)", default_name)
    name = config_fields.get(source, "", data, "name", str, default_name)
    if name != default_name:
        raise ConfigError(source, "name", f"the file's stem {default_name!r} (one board, one file)", name)
    return name


def _capability_fields(source, data: dict) -> tuple:
    """(runtimes, providers, declared power sources or None: the meters declared)."""
    caps = config_fields.get(source, "", data, "capabilities", dict, {})
    config_fields.check_keys(source, "capabilities", caps, ("runtimes", "providers", "power"))
    runtimes = tuple(config_fields.get_list(source, "capabilities", caps, "runtimes", str, choices=KNOWN_RUNTIMES))
    providers = tuple(config_fields.get_list(source, "capabilities", caps, "providers", str))
    declared_power = (config_fields.get_list(source, "capabilities", caps, "power", str)
                      if caps.get("power") is not None else None)   # None: the meters declared
    return runtimes, providers, declared_power


def _typed_settings(source, raw_settings: dict) -> dict:
    """SETTINGS_DEFAULTS overridden by the YAML's settings, each of its default's type, and
    the GPU settings the YAML sets."""
    config_fields.check_keys(source, "settings", raw_settings, tuple(SETTINGS_DEFAULTS) + GPU_SETTINGS)
    settings = dict(SETTINGS_DEFAULTS)
    for key, default in SETTINGS_DEFAULTS.items():
        if isinstance(default, bool):
            settings[key] = config_fields.get(source, "settings", raw_settings, key, bool, default)
        elif isinstance(default, int):
            settings[key] = config_fields.get(source, "settings", raw_settings, key, int, default, minimum=0)
        elif isinstance(default, float):
            settings[key] = config_fields.get(source, "settings", raw_settings, key, float, default, minimum=0.0)
        else:
            settings[key] = config_fields.get(source, "settings", raw_settings, key, str, default,
                                       choices=("disable", "basic", "extended", "all"))
    settings.update(_gpu_settings(source, raw_settings))
    return settings


def _check_counts(source, settings: dict) -> None:
    if settings["rounds"] < 1:
        raise ConfigError(source, "settings.rounds", "an integer >= 1", settings["rounds"])
    if settings["min_iterations"] < 1:
        raise ConfigError(source, "settings.min_iterations", "an integer >= 1", settings["min_iterations"])
    if settings["max_iterations"] < settings["min_iterations"]:
        raise ConfigError(source, "settings.max_iterations", "at least settings.min_iterations",
                          settings["max_iterations"])


def _power_entries(source, kind: str, data: dict) -> list:
    power = config_fields.get(source, "", data, "power", list, [])
    from .power import validate_entries

    validate_entries(source, kind, power)
    return power


def _datasheet_peak(source, data: dict) -> dict | None:
    """`peak: {macs_per_s: {fp32: 1.2e10, int8: 4.8e10}, bytes_per_s: 1.7e10, source: "..."}`."""
    raw = config_fields.get(source, "", data, "peak", dict, None)
    if raw is None:
        return None
    config_fields.check_keys(source, "peak", raw, ("macs_per_s", "bytes_per_s", "source"))
    macs = config_fields.get(source, "peak", raw, "macs_per_s", dict, {})
    config_fields.check_keys(source, "peak.macs_per_s", macs, ("fp32", "int8"))
    return {"macs_per_s": {k: config_fields.get(source, "peak.macs_per_s", macs, k, (int, float), None, minimum=1)
                           for k in ("fp32", "int8") if k in macs},
            "bytes_per_s": config_fields.get(source, "peak", raw, "bytes_per_s", (int, float), None, minimum=1),
            "source": config_fields.get(source, "peak", raw, "source", str, "datasheet")}


def _power_capability(source, declared, meters: tuple) -> tuple:
    """The meters a device has: those its YAML names (``power:``, a kind's own monitor).
    ``capabilities.power`` need not repeat them; where it is written, each name must be one
    of them (a name with no meter behind it would run power tests that measure nothing)."""
    if declared is None:
        return meters
    for i, name in enumerate(declared):
        if name not in meters:
            raise ConfigError(source, f"capabilities.power[{i}]",
                              "a meter the device declares (" + (", ".join(meters) or "none") + ")", name,
                              f"add {{meter: {name}}} under power:, or drop capabilities.power: it is "
                              "filled from power: by itself")
    return tuple(declared)


def _gpu_settings(source, raw: dict) -> dict:
    out = {}
    device = config_fields.get(source, "settings", raw, "device", str, None)
    if device is not None and not TORCH_DEVICE.match(device):
        raise ConfigError(source, "settings.device", "cpu, cuda or cuda:N", device)
    io = config_fields.get(source, "settings", raw, "io", str, None, choices=("device", "host"))
    values = {"device": device, "io": io,
              "sync": config_fields.get(source, "settings", raw, "sync", bool, None),
              "gpu_index": config_fields.get(source, "settings", raw, "gpu_index", int, None, minimum=0),
              "trt_engine_cache_dir": config_fields.get(source, "settings", raw, "trt_engine_cache_dir", str, None)}
    out.update({k: v for k, v in values.items() if v is not None})
    return out


def _commands(source, data: dict, key: str) -> tuple:
    """A list of argv lists (never a shell string: each word is passed as it is)."""
    out = []
    for i, argv in enumerate(config_fields.get(source, "", data, key, list, [])):
        if not isinstance(argv, list) or not argv or not all(isinstance(w, str) and w for w in argv):
            raise ConfigError(source, f"{key}[{i}]", "a command as a list of words, e.g. "
                              "[cpupower, frequency-set, -g, performance]", argv)
        out.append(tuple(argv))
    return tuple(out)


def load_device_file(path: Path) -> DeviceSpec:
    path = Path(path)
    return parse_device(yamlfile.load(path), path, path.stem)


class Inventory:
    """All devices of a directory; unknown names are answered with the known ones."""

    def __init__(self, directory: Path | str | None):
        self.directory = Path(directory) if directory else None
        self._files = {}
        if self.directory is not None:
            if not self.directory.is_dir():
                raise ConfigError(self.directory, "--devices-dir", "a directory of device YAML files",
                                  str(self.directory), "it does not exist")
            self._files = {p.stem: p for p in sorted(self.directory.glob("*.yaml"))}

    def names(self) -> list[str]:
        return sorted(set(self._files) | {"local"})

    def get(self, name: str) -> DeviceSpec:
        if name in self._files:
            return load_device_file(self._files[name])  # its stem is checked with the file named
        names.check_name("--device", "NAME", name)
        if name == "local":
            return parse_device(dict(BUILTIN_LOCAL), "<built-in local device>", "local")
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        where = self.directory or "<no inventory directory>"
        raise ConfigError(where, "--device", "one of " + ", ".join(self.names()), name,
                          f"no such device{hint}")

    def select(self, pattern: str) -> list[str]:
        """The devices a `--device` word names: a device's name; else every device whose
        name starts with it as a whole dash-separated part (`qemu` selects qemu-m3 and qemu-m4)
        or whose tags carry it; else every name matching it as a glob (`rpi*`); an error
        naming the known names and tags, with a "did you mean", when none does."""
        import fnmatch

        if pattern in self._files or pattern == "local":
            return [pattern]
        specs = []
        for name in self.names():
            try:
                specs.append(self.get(name))
            except ConfigError:
                continue   # a broken file is reported when it is asked for by name
        matched = [n for n in self.names() if n.startswith(pattern + "-")
                   or any(s.name == n and pattern in s.tags for s in specs)]
        if matched:
            return matched
        globbed = [n for n in self.names() if fnmatch.fnmatchcase(n, pattern)]
        if globbed:
            return globbed
        tags = sorted({t for s in specs for t in s.tags})
        words = self.names() + tags
        close = difflib.get_close_matches(pattern, words, n=1)
        prefixed = [n for n in self.names() if n.startswith(pattern)]
        hint = (f"; did you mean {close[0]!r}?" if close else
                f"; did you mean {prefixed[0]!r}?" if prefixed else "")
        where = self.directory or "<no inventory directory>"
        raise ConfigError(where, "--device", "a device name, a tag or a glob: names "
                          + ", ".join(self.names()) + ("; tags " + ", ".join(tags) if tags else ""),
                          pattern, f"no such device{hint}")

    def all(self) -> list[DeviceSpec]:
        return [self.get(n) for n in self.names()]
