"""The device abstraction layer: one module per kind, registered by name.

Built-in kinds are imported lazily (paramiko or pyserial load only when used); a third
party adds a kind through the ``harness.devices`` entry-point group.
"""
from __future__ import annotations

from ..registry import Registry

_kinds = Registry("harness.devices", {
    "local": "harness.devices.local:LocalDevice",
    "ssh": "harness.devices.ssh:SshDevice",
    "serial": "harness.devices.serial:SerialDevice",
    "labgrid": "harness.devices.labgrid:LabgridDevice",
}, attribute="kind")

register = _kinds.register
known_kinds = _kinds.names
device_class = _kinds.get


def open_device(spec):
    """A Device for a DeviceSpec (not yet connected)."""
    return device_class(spec.kind)(spec)
