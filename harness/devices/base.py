"""The Device protocol: every device kind (local, ssh, serial, ...) implements this.

    connect()                 open the link (no-op for local)
    deploy(path) -> handle    make a file available on the device; returns how the device
                              names it (a path on a board, a firmware slot on an MCU)
    run(spec) -> raw          one measurement; `spec` is the runner's run spec (see
                              harness/ondevice/runner.py) with device handles in place of paths;
                              `raw` is the runner's JSON document (ok: true) or raises
    info() -> dict            facts about the device for provenance (never secrets)
    close()

What the session, the power code and the CLI use besides, each with a default here, so a
kind overrides only what it has (callers never probe with getattr or branch on the kind):

    execute(argv)             the YAML's prepare/restore commands (default: refused by name)
    meter_source(root)        where on-board meters read (default None: it hosts none)
    clock_offset_s()          device clock minus controller clock (default 0)
    machine_snapshot()        the runner's machine state, for `devices check` (default None)
    check(variants) -> text   what `harness devices check` prints (default: info() and
                              the machine state's stability hints)
    clean() -> text           what `harness devices clean` did (default: nothing to remove)
    inventory_lines(spec)     extra lines under the device in `harness devices list`
    meters_in_options(opts)   meters the kind's own section names (an MCU's energy monitor)

Class facts: OPTIONS / SECTIONS (the kind's YAML section as option tables; docs/options.md
is generated from them), ``is_controller`` (the device is this machine, so meters reading
its hardware in-process measure it), ``default_rounds``, ``default_emulation``.

Every kind returns the same raw document, so everything after it (Measurement, store,
report) knows nothing about SSH, serial or QEMU.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar, Mapping, Optional

from ..inventory import DeviceSpec
from ..registry import Option, check_options


class Device(abc.ABC):
    kind: ClassVar[str] = ""        # set by the registry (harness/devices/__init__.py)
    # The kind's own YAML section (``ssh:``, ``serial:``): field -> Option, and nested
    # sections (``serial.qemu``) -> their tables.
    OPTIONS: ClassVar[Mapping[str, Option]] = {}
    SECTIONS: ClassVar[Mapping[str, Mapping[str, Option]]] = {}
    # The device is the controller itself: meters that read this machine's hardware
    # in-process (NVML) measure it.
    is_controller: ClassVar[bool] = False
    # The checked section keeps only the fields given (the driver fills defaults with
    # registry.with_defaults), so "not given" stays distinguishable from a default.
    only_given_options: ClassVar[bool] = False
    # Rounds per measurement when the YAML sets none (settings.rounds).
    default_rounds: ClassVar[int] = 3
    # What an `emulated: true` device's times are when its YAML says no `emulation:`.
    default_emulation: ClassVar[str] = "wall-clock"

    def __init__(self, spec: DeviceSpec):
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def validate_options(cls, options: dict, source) -> dict:
        """The kind's own YAML section (e.g. ``ssh:``) checked against OPTIONS and SECTIONS,
        defaults filled in, then ``check_section``; errors name file and field."""
        fill = not cls.only_given_options
        out = check_options(source, cls.kind, options, cls.OPTIONS, also=tuple(cls.SECTIONS), fill=fill)
        for section, table in cls.SECTIONS.items():
            given = options.get(section)
            if given is not None:
                out[section] = check_options(source, f"{cls.kind}.{section}", given, table, fill=fill)
            elif fill:
                out[section] = None
        return cls.check_section(out, source)

    @classmethod
    def check_section(cls, options: dict, source) -> dict:
        """Checks across fields of the checked section (raise ConfigError naming the field);
        returns the options the driver gets."""
        return options

    @classmethod
    def meters_in_options(cls, options: dict) -> tuple:
        """Names of meters the kind's own section declares (beside ``power:``)."""
        return ()

    @classmethod
    def inventory_lines(cls, spec: DeviceSpec) -> list:
        """Extra lines `harness devices list` prints under this device (e.g. a labgrid
        pool's places); none by default."""
        return []

    @classmethod
    def unsupported_reason(cls, spec: DeviceSpec, variant_id: str) -> Optional[str]:
        """Why this device cannot measure the variant ``model/variant`` although it has a
        runtime for it (e.g. a prebuilt firmware that holds another model), or None."""
        return None

    @classmethod
    def spreads_over_workers(cls, options: dict) -> bool:
        """A pool of identical boards (labgrid tags): each xdist worker takes its own board
        and measures its own variants, one campaign per variant."""
        return False

    @classmethod
    def public_options(cls, options: dict) -> dict:
        """The kind's options as they may appear in the store and reports (no secrets)."""
        return dict(options)

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def deploy(self, artifact: Path) -> str: ...

    @abc.abstractmethod
    def run(self, spec: dict) -> dict: ...

    @abc.abstractmethod
    def info(self) -> dict: ...

    def execute(self, argv: list, timeout_s: float = 60.0) -> tuple:
        """Run one command on the device (the YAML's prepare/restore): (exit code, output).
        A kind that cannot run commands refuses by name."""
        from ..errors import DeviceError

        raise DeviceError(f"{self.name}: a {self.spec.kind} device cannot run prepare/restore commands")

    def meter_source(self, root: str = "/"):
        """Where on-board power meters read (a harness.power Source), or None: this kind
        cannot host on-board meters."""
        return None

    def machine_snapshot(self):
        """The runner's machine-state snapshot taken on the device now (`harness devices
        check` turns it into stability hints); None where a kind cannot read one."""
        return None

    def clock_offset_s(self) -> float:
        """Device clock minus controller clock, for aligning a meter's samples (0: same clock)."""
        return 0.0

    def check(self, variants=()) -> str:
        """What `harness devices check NAME` prints for a connected device: its facts and
        what would make its numbers unstable. ``variants``: (variant id, runtimes) pairs a
        kind that can tell may say it runs or not."""
        import json

        return json.dumps(self.info(), indent=2) + "\n" + stability_text(self.name, self.machine_snapshot())

    def clean(self) -> str:
        """Remove what the harness left on the device (`harness devices clean NAME`), on an
        unconnected device; says what was done."""
        return f"{self.name}: a {self.spec.kind} device keeps no harness work directory"

    def close(self) -> None:
        pass

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def stability_text(name: str, snapshot) -> str:
    """The stability lines of `devices check`: what would make these numbers unstable
    (pyperf's `system show`), from a machine snapshot (None: the device reports none)."""
    from ..machine import stability_hints

    if snapshot is None:
        return f"  stability: {name} reports no machine state"
    hints = stability_hints(snapshot)
    lines = ["  stability: " + ("nothing found that moves numbers" if not hints else hints[0])]
    lines += [f"             {hint}" for hint in hints[1:]]
    return "\n".join(lines)
