"""`pytest suites/ --device NAME --search MANIFEST`: a search as a pytest test.

With ``--search``, one test per device, ``search[<device>]``, is added to the session: it
runs (or resumes) the manifest's search on that device into the same store as the suites,
prints the front, and fails when no trial met every budget (the space holds no acceptable
variant). Registered by the harness plugin's ``pytest_plugins``; usable alone with
``-p harness.search.pytest_entry``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ..errors import HarnessError


def pytest_addoption(parser):
    group = parser.getgroup("harness-search", "compression search on the device (harness search)")
    group.addoption("--search", dest="harness_search", metavar="MANIFEST",
                    help="search the manifest's search: space on every --device (one test each)")
    group.addoption("--search-trials", dest="harness_search_trials", type=int, default=20, metavar="N",
                    help="the study's total number of trials (default 20)")
    group.addoption("--search-study", dest="harness_search_study", metavar="NAME",
                    help="study name (default: <model>-<device>); workers naming one study share it")


def _option(config, name, default=None):
    """An option of the harness plugin when it is loaded (store, devices, durations), else the default."""
    try:
        value = config.getoption(name)
    except ValueError:
        return default
    return default if value is None else value


class SearchItem(pytest.Item):
    def __init__(self, *, device: str, manifest: Path, **kwargs):
        super().__init__(**kwargs)
        self.device, self.manifest = device, manifest

    def runtest(self):
        from .cli import execute, front_lines

        config = self.config
        root = Path(str(config.rootpath))
        store = _option(config, "harness_store") or f"sqlite:///{root / 'reports' / 'harness.sqlite'}"
        devices_dir = Path(_option(config, "harness_devices_dir") or root / "devices")
        overrides = {"min_duration_s": _option(config, "harness_min_duration"),
                     "warmup": _option(config, "harness_warmup")}
        result = execute(self.manifest, self.device, trials=config.getoption("harness_search_trials"),
                         store_url=store, study=config.getoption("harness_search_study"), devices_dir=devices_dir,
                         overrides=overrides, log=lambda line: None)
        lines = front_lines(result.summary)
        self.add_report_section("call", "search", "\n".join(lines))
        if not any(t["state"] == "feasible" for t in result.summary["trials"]):
            raise SearchFailed(f"study {result.study}: no trial met every budget; " + "; ".join(
                f"trial {t['number']} {t['state']}" for t in result.summary["trials"][:10]))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, (SearchFailed, HarnessError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.manifest, None, f"search[{self.device}]"


class SearchFailed(Exception):
    pass


def pytest_collection_modifyitems(session, config, items):
    manifest = config.getoption("harness_search")
    if not manifest:
        return
    path = Path(manifest)
    if not path.is_file():
        raise pytest.UsageError(f"--search {manifest}: no such manifest")
    devices = _option(config, "harness_devices") or ["local"]
    for device in devices:
        items.append(SearchItem.from_parent(session, name=f"search[{device}]", device=device, manifest=path))

