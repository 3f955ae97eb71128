"""The Device protocol: every device kind (local, ssh, serial, ...) implements this.

    connect()                 open the link (no-op for local)
    deploy(path) -> handle    make a file available on the device; returns how the device
                              names it (a path on a board, a firmware slot on an MCU)
    run(spec) -> raw          one measurement; `spec` is the runner's run spec (see
                              harness/runner.py) with device handles in place of paths;
                              `raw` is the runner's JSON document (ok: true) or raises
    info() -> dict            facts about the device for provenance (never secrets)
    close()

Every kind returns the same raw document, so everything after it (Measurement, store,
report) knows nothing about SSH, serial or QEMU.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar, Optional

from ..inventory import DeviceSpec


class Device(abc.ABC):
    kind: ClassVar[str] = ""
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
        """Check the kind's own YAML section (e.g. ``ssh:``); errors name file and field."""
        from .. import schema

        schema.check_keys(source, cls.kind, options, ())
        return options

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

        raise DeviceError(f"{self.name}: a {self.kind} device cannot run prepare/restore commands")

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

    def close(self) -> None:
        pass

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()
        return False
