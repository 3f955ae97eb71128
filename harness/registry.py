"""One registry for the harness's seams (device kinds, power meters, compression techniques)
and one declarative option format for what each of them reads from YAML.

A name is written once: in a registry's built-in table ("name" -> "module:attribute",
imported on first use, so paramiko, pyserial or a meter's vendor package load only when a
device needs them), in a built-in module's decorator, in a third party's decorator, or as
the name of an entry point of the registry's group. The same name registered twice is
refused, naming both; an unknown name is answered with the known ones and a "did you mean".

An option table is a mapping of field name -> ``Option`` (type, default, help, allowed
values or range). The same table checks the YAML (errors read
``FILE: field X: expected ..., got ...``) and writes the docs' tables
(``python -m harness.registry --markdown``, or ``--write`` to regenerate docs/options.md).
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import config_fields
from .errors import HarnessError


class RegistryError(HarnessError):
    """A seam's name is registered twice, or the name asked for is not registered."""


class UnknownName(RegistryError, KeyError):
    """No such name; the message names the known ones (a KeyError too, for callers that ask)."""

    def __str__(self):  # KeyError would quote the whole message
        return self.args[0]


class Option:
    """One YAML field: its type(s), default, help text and allowed values or range.

    ``items``: the field is a list of this type. ``required``: no default, it must be given.
    """

    def __init__(self, types, default=None, *, help: str = "", choices=None, minimum=None, maximum=None,
                 required: bool = False, items=None):
        self.types, self.default, self.help, self.choices = types, default, help, choices
        self.minimum, self.maximum, self.required, self.items = minimum, maximum, required, items

    def get(self, source, where: str, mapping: dict, key: str):
        """mapping[key] checked (or the default); errors name the file, the field and what
        is expected."""
        choices = None if self.items is not None else self.choices  # a list's choices are its items'
        value = config_fields.get(source, where, mapping, key, self.types, self.default, choices=choices,
                           minimum=self.minimum, maximum=self.maximum, required=self.required)
        if self.items is not None and mapping.get(key) is not None:
            value = config_fields.get_list(source, where, mapping, key, self.items, choices=self.choices)
        # A copy, so no caller can change the table's default.
        return list(value) if isinstance(value, list) else value

    # -- the docs' words for it
    def type_words(self) -> str:
        if self.items is not None:
            return "a list of " + _PLURAL.get(self.items, config_fields.describe(self.items))
        if self.types is object:
            return "any"
        return config_fields.describe(self.types)

    def allowed_words(self) -> str:
        if self.choices is not None:
            return ", ".join(f"`{c}`" for c in self.choices)
        if self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else f"{self.minimum}"
            high = "" if self.maximum is None else f"{self.maximum}"
            return f"{low}..{high}"
        return ""

    def default_words(self) -> str:
        if self.required:
            return "required"
        if self.default is None:
            return "-"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, (list, tuple)):  # as YAML writes it
            return "`[" + ", ".join(map(str, self.default)) + "]`"
        return f"`{self.default}`"


_PLURAL = {str: "strings", int: "integers", float: "numbers", dict: "mappings"}


def check_options(source, where: str, mapping: Any, table: Mapping[str, Option], also: Iterable[str] = (),
                  fill: bool = True) -> dict:
    """Every field of ``table`` read from ``mapping`` and checked; a field the table does
    not name (a typo) is refused with a "did you mean". ``also``: further keys the caller
    reads itself (e.g. a meter entry's ``meter``). ``fill``: defaults filled in (else only
    the fields given: a driver that tells "not given" from a default, e.g. ssh's port,
    which ~/.ssh/config may set)."""
    config_fields.check_keys(source, where, mapping, tuple(also) + tuple(table))
    return {key: option.get(source, where, mapping, key) for key, option in table.items()
            if fill or option.required or mapping.get(key) is not None}


def with_defaults(table: Mapping[str, Option], given: Mapping) -> dict:
    """``given`` with the table's (non-None) defaults for the fields it lacks."""
    out = {key: option.default for key, option in table.items() if option.default is not None}
    out.update({key: value for key, value in given.items() if value is not None})
    return out


def markdown_table(table: Mapping[str, Option], prefix: str = "") -> str:
    """The docs' table of an option table: field, type, default, allowed values, help."""
    rows = ["| field | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for key, option in table.items():
        cells = [f"`{prefix}{key}`", option.type_words(), option.default_words(), option.allowed_words(),
                 option.help]
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(rows)


class Registry:
    """Name -> object for one seam.

    ``builtin``: "name" -> "module:attribute", imported on first use; the registry sets the
    object's ``attribute`` to the name (so the built-in's name is written only here).
    ``modules``: built-in modules that register their objects with ``register`` when imported
    (imported together the first time a name is looked up).
    ``group``: the entry-point group third parties register through.
    """

    def __init__(self, what: str, group: str, builtin: Mapping[str, str] | None = None,
                 modules: Iterable[str] = (), attribute: str = "name"):
        self.what = what                # "device kind", "meter", "technique": for messages
        self.group = group
        self.builtin = dict(builtin or {})
        self.modules = tuple(modules)
        self.attribute = attribute
        self._registered: dict[str, Any] = {}
        self._loaded: dict[str, Any] = {}   # built-ins and entry points, once imported
        self._modules_imported = False
        self._importing_builtins = False
        self._from_builtin_modules: set = set()   # names the built-in modules registered

    # -- registering
    def register(self, name: str, obj=None, *, module: str = ""):
        """Register ``obj`` as ``name``; without ``obj``, a class or function decorator.
        ``module``: the module that defines it, where that is not ``obj.__module__``."""
        if obj is None:
            return lambda o: self.register(name, o, module=module)
        self._import_modules()   # a built-in's name is taken even before anyone asked for it
        self._refuse_duplicate(name, obj)
        if isinstance(obj, type):
            setattr(obj, self.attribute, name)
        self._registered[name] = obj
        # a built-in module imported directly (before the registry imported its list) registers
        # outside _importing_builtins: its own module still says it is the harness's
        if self._importing_builtins or (module or getattr(obj, "__module__", "")) in self.modules:
            self._from_builtin_modules.add(name)
        return obj

    def _refuse_duplicate(self, name: str, obj) -> None:
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.what} needs a non-empty name, got {name!r}")
        if name in self.builtin:
            raise RegistryError(f"{self.what} {name!r} is already a built-in ({self.builtin[name]}); "
                                f"choose another name for {_describe(obj)}")
        old = self._registered.get(name)
        if old is not None and not _same(old, obj):
            raise RegistryError(f"{self.what} {name!r} is registered twice: by {_describe(old)} and "
                                f"by {_describe(obj)}")

    # -- looking up
    def _import_modules(self) -> None:
        if not self._modules_imported:
            self._modules_imported = True
            self._importing_builtins = True
            try:
                for module in self.modules:
                    importlib.import_module(module)
            finally:
                self._importing_builtins = False

    def _entry_points(self) -> dict:
        found = {}
        for ep in entry_points(group=self.group):
            if ep.name in self.builtin or ep.name in self._registered or ep.name in found:
                raise RegistryError(f"entry point {ep.name!r} ({ep.value}) of group {self.group} names a "
                                    f"{self.what} that is already registered")
            found[ep.name] = ep
        return found

    def names(self) -> list[str]:
        self._import_modules()
        return sorted(set(self.builtin) | set(self._registered) | set(self._entry_points()))

    def get(self, name: str):
        """The object registered as ``name``; UnknownName (the known names, a did-you-mean) otherwise."""
        self._import_modules()
        if name in self._registered:
            return self._registered[name]
        if name in self._loaded:
            return self._loaded[name]
        if name in self.builtin:
            module, attr = self.builtin[name].split(":")
            obj = getattr(importlib.import_module(module), attr)
            if isinstance(obj, type):
                setattr(obj, self.attribute, name)
            self._loaded[name] = obj
            return obj
        plugins = self._entry_points()
        if name in plugins:
            obj = plugins[name].load()
            if isinstance(obj, type):   # the entry point's name is the one name (not an inherited one)
                setattr(obj, self.attribute, name)
            self._loaded[name] = obj
            return obj
        raise UnknownName(self.unknown(name))

    def unknown(self, name) -> str:
        """The message for a name that is not registered: the known ones and the closest."""
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.what} {name!r}{hint} (known: {', '.join(known)})"

    def expected(self, name) -> tuple[str, str]:
        """(expected, hint) for a ConfigError about an unknown name."""
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1)
        return "one of " + ", ".join(known), (f"did you mean {close[0]!r}?" if close else "")

    def items(self) -> list[tuple[str, Any]]:
        return [(name, self.get(name)) for name in self.names()]

    def builtin_items(self) -> list[tuple[str, Any]]:
        """What the harness itself ships (not a third party's or a test's registrations)."""
        self._import_modules()
        return [(name, self.get(name)) for name in sorted(set(self.builtin) | self._from_builtin_modules)]


def _same(a, b) -> bool:
    """The same object, or the same definition imported again (a reloaded module)."""
    return a is b or (getattr(a, "__module__", None) == getattr(b, "__module__", 0)
                      and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", 0))


def _describe(obj) -> str:
    if hasattr(obj, "__qualname__"):
        return f"{obj.__module__}.{obj.__qualname__}"
    return repr(obj)


# ------------------------------------------------------------------ the docs

DOCS = Path(__file__).resolve().parent.parent / "docs" / "options.md"


def options_markdown() -> str:
    """Every built-in device kind's, meter's and technique's option table, as
    docs/options.md holds it."""
    from .compress import technique_registry
    from .devices import kind_registry
    from .power import meter_registry

    out = ["# Options of device kinds, meters and techniques",
           "",
           "Generated from the option tables in the code by `python -m harness.registry --write`;",
           "a test fails when this page and the code disagree. Every field is checked where the",
           "YAML is read, with an error naming the file, the field and what was expected.",
           "",
           "## Device kinds (`kind:`, and the kind's own section of a device YAML)", ""]
    for name, cls in kind_registry.builtin_items():
        out += [f"### `{name}`", "", _summary(cls), ""]
        out += [markdown_table(cls.OPTIONS, prefix=f"{name}."), ""] if cls.OPTIONS else ["No options.", ""]
        for section, table in cls.SECTIONS.items():
            out += [markdown_table(table, prefix=f"{name}.{section}."), ""]
    out += ["## Power meters (`power:` entries of a device YAML)", "",
            "Every entry also takes `meter` (the name) and `label` (how reports name it).", ""]
    for name, cls in meter_registry.builtin_items():
        out += [f"### `{name}`", "", _summary(cls), ""]
        out += [markdown_table(cls.OPTIONS), ""] if cls.OPTIONS else ["No options.", ""]
    out += ["## Compression techniques (`technique:` and `params:` of a model manifest's variant)", ""]
    for name, technique in technique_registry.builtin_items():
        out += [f"### `{name}`", "", technique.description, "",
                f"Takes {', '.join(technique.formats)} models.", ""]
        out += [markdown_table(technique.options, prefix="params."), ""] if technique.options else ["No params.", ""]
    return "\n".join(line.rstrip() for line in out).rstrip() + "\n"


def _summary(cls) -> str:
    """The first paragraph of a class's docstring, else of its module's, on one line."""
    doc = cls.__doc__ or sys.modules[cls.__module__].__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.registry",
                                     description="The option tables of device kinds, meters and techniques.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print docs/options.md to stdout")
    group.add_argument("--write", action="store_true", help=f"regenerate {DOCS.name} in docs/")
    args = parser.parse_args(argv)
    text = options_markdown()
    if args.write:
        DOCS.write_text(text)
        print(f"wrote {DOCS}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
