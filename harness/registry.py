"""Name -> class tables for the harness's seams (device kinds, power meters).

Built-ins are named by "module:attribute" and imported on first use, so paramiko, pyserial
or a meter's vendor package load only when a device needs them; classes can also register
with a decorator, and third parties through an entry-point group.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points


class Registry:
    def __init__(self, group: str, builtin: dict[str, str], attribute: str):
        self.group = group              # entry-point group of third-party plugins
        self.builtin = dict(builtin)    # name -> "module:attribute"
        self.attribute = attribute      # class attribute set to the registered name
        self._registered: dict[str, type] = {}

    def register(self, name: str):
        def decorator(cls):
            setattr(cls, self.attribute, name)
            self._registered[name] = cls
            return cls
        return decorator

    def _plugins(self) -> dict:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        return sorted(set(self.builtin) | set(self._registered) | set(self._plugins()))

    def get(self, name: str):
        """The class registered as `name`; KeyError (naming the known ones) otherwise."""
        if name in self._registered:
            return self._registered[name]
        if name in self.builtin:
            module, attr = self.builtin[name].split(":")
            return getattr(importlib.import_module(module), attr)
        plugins = self._plugins()
        if name in plugins:
            return plugins[name].load()
        raise KeyError(f"unknown {self.attribute} {name!r}; known: {', '.join(self.names())}")
