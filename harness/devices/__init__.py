"""The device abstraction layer: one module per kind, registered by name.

Built-in kinds are imported lazily (paramiko or pyserial load only when used); a third
party adds a kind through the ``harness.devices`` entry-point group.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

_BUILTIN = {
    "local": "harness.devices.local:LocalDevice",
    "ssh": "harness.devices.ssh:SshDevice",
    "serial": "harness.devices.serial:SerialDevice",
}
_registered: dict[str, type] = {}


def register(kind: str):
    def decorator(cls):
        cls.kind = kind
        _registered[kind] = cls
        return cls
    return decorator


def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group="harness.devices")}


def known_kinds() -> list[str]:
    return sorted(set(_BUILTIN) | set(_registered) | set(_plugins()))


def device_class(kind: str):
    if kind in _registered:
        return _registered[kind]
    if kind in _BUILTIN:
        module, attr = _BUILTIN[kind].split(":")
        return getattr(importlib.import_module(module), attr)
    plugins = _plugins()
    if kind in plugins:
        return plugins[kind].load()
    raise KeyError(f"unknown device kind {kind!r}; known: {', '.join(known_kinds())}")


def open_device(spec):
    """A Device for a DeviceSpec (not yet connected)."""
    return device_class(spec.kind)(spec)
