"""The device abstraction layer: one module per kind, registered by name.

Built-in kinds are named once, in the table below, and imported on first use (paramiko or
pyserial load only when a device needs them); a third party adds a kind with
``@register("name")`` or through the ``harness.devices`` entry-point group.
"""
from __future__ import annotations

from ..registry import Registry

kind_registry = Registry("device kind", "harness.devices", {
    "local": "harness.devices.local:LocalDevice",
    "ssh": "harness.devices.ssh:SshDevice",
    "serial": "harness.devices.serial:SerialDevice",
    "labgrid": "harness.devices.labgrid:LabgridDevice",
}, attribute="kind")

register = kind_registry.register
known_kinds = kind_registry.names
device_class = kind_registry.get


def open_device(spec):
    """A Device for a DeviceSpec (not yet connected)."""
    return device_class(spec.kind)(spec)
