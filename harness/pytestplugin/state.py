"""HarnessState: the one object the plugin's modules share, kept in ``config.stash``.

Every module reads and writes its public attributes; none reaches into another module.
The harness BenchSession (and so the store, and sqlalchemy) is made on first use only: a pytest
run that does not benchmark never opens a store.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import pytest

STORE_FILE = Path("reports") / "harness.sqlite"
VARIANT_CACHE = ".harness-cache"   # harness.variant_build.DEFAULT_CACHE, without importing variant_build

_KEY = pytest.StashKey["HarnessState"]()


class HarnessState:
    """Per-pytest-process state: options resolved against the rootdir, the BenchSession, what the
    tests and the gates found, and what the terminal summary says at the end."""

    def __init__(self, config):
        self.config = config
        opt = config.option
        root = Path(config.rootpath)
        self.root = root
        self.devices_dir = Path(opt.harness_devices_dir) if opt.harness_devices_dir else root / "devices"
        self.models_dir = Path(opt.harness_models_dir) if opt.harness_models_dir else root / "models"
        # A directory given on the command line must exist (a typo is a usage error, not a green run)
        self.dirs_given = {"devices": bool(opt.harness_devices_dir), "models": bool(opt.harness_models_dir)}
        # anchored at the rootdir, so the store does not depend on where pytest was started
        self.store_url = opt.harness_store or f"sqlite:///{root / STORE_FILE}"
        self.report_path = opt.harness_report if opt.harness_report is not None else str(root / "reports" / "report.html")
        self.device_words = opt.harness_devices or ["local"]   # names, tags or globs
        self.overrides = {"min_duration_s": opt.harness_min_duration, "warmup": opt.harness_warmup,
                          "rounds": opt.harness_rounds,
                          "profile": opt.harness_profile or None}   # None: the device YAML's settings.profile
        self.selection: list = []           # (manifest, recipe) pairs the suites parametrize
        self.progress: Callable[[str], None] = lambda text: None   # set by harness.pytestplugin.terminal
        self.notice: Callable[[str], None] = lambda text: None     # a line now, even inside a test
        self.outcomes: dict = {}            # "device|model/variant" -> {"passed": [...], "failed": [...]}
        self.errors: list[str] = []         # said last by the summary; the run failed
        # lab CI (harness.pytestplugin.lab)
        self.gates: list = []               # compare.Gate from --compare-fail
        self.baseline_ref: Optional[str] = opt.harness_baseline
        self.baseline_run: Optional[str] = None
        self.baseline_note: Optional[str] = None
        self.worker_run_id: Optional[str] = None   # an xdist worker's, made by the controller
        self.baseline_measurements: Optional[dict] = None   # (device, model, variant) -> Measurement
        self.verdicts: dict = {}            # measurement id -> its gates' verdicts (gated once)
        self.comparison = None              # the run's compare.Comparison, at its end
        self._device_names = self._inventory = self._manifests = self._bench_session = None

    # ------------------------------------------------ inventory and variant_build

    @property
    def device_names(self) -> list:
        """The devices the --device words select (a tag selects every device carrying it)."""
        if self._device_names is None:
            selected = []
            for word in self.device_words:
                selected += [n for n in self.inventory.select(word) if n not in selected]
            self._device_names = selected
        return self._device_names

    @property
    def inventory(self):
        if self._inventory is None:
            from ..inventory import Inventory

            given = self.dirs_given["devices"] or self.devices_dir.is_dir()
            self._inventory = Inventory(self.devices_dir if given else None)
        return self._inventory

    @property
    def manifests(self) -> list:
        if self._manifests is None:
            from .. import variant_build

            given = self.dirs_given["models"] or self.models_dir.is_dir()
            self._manifests = variant_build.load_manifests(self.models_dir) if given else []
        return self._manifests

    def select(self, pairs) -> None:
        self.selection = list(pairs)
        if self._bench_session is not None:
            self._bench_session.select(self.selection)

    # ------------------------------------------------------------ the BenchSession

    @property
    def bench_session(self):
        """The harness BenchSession, made (and its store opened) on first use. Its run starts
        only when BenchSession.start_run() is called (by the first campaign, or by an xdist
        controller before its workers start)."""
        if self._bench_session is None:
            from ..session import BenchSession
            from ..store import Store

            opt = self.config.option
            store = Store(self.store_url)
            leases = None
            if not opt.harness_no_lease:
                from ..lease import LeaseManager

                leases = LeaseManager(store, ttl_s=opt.harness_lease_timeout, wait_s=opt.harness_lease_wait)
                leases.notify = lambda text: self.notice(text)   # a wait for a board is shown, not silent
            run_settings = {"devices": self.device_words,
                            "variants": opt.harness_variants, "baseline": self.baseline_ref,
                            "compare_fail": [str(g) for g in self.gates],
                            "workers": getattr(opt, "numprocesses", None) or 0}
            worker = {"run_id": self.worker_run_id, "owns_run": False} if is_worker(self.config) else {}
            self._bench_session = BenchSession(self.inventory, store, self.manifests, cache=self.root / VARIANT_CACHE,
                                    overrides=self.overrides, run_tag=opt.harness_run_tag,
                                    order_seed=opt.harness_order_seed, progress=lambda text: self.progress(text),
                                    leases=leases, run_settings=run_settings, **worker)
            self._bench_session.select(self.selection)
        return self._bench_session

    @property
    def existing_bench_session(self):
        """The BenchSession if one was made (hooks that must not open a store ask this)."""
        return self._bench_session

    def validate(self) -> None:
        """Check devices and manifests before any test runs: a typo fails at once, clearly."""
        from .. import names

        for name in self.device_names:
            self.inventory.get(name)
        _ = self.manifests
        if self.config.option.harness_run_tag is not None:
            names.check_name("--run-tag", "TAG", self.config.option.harness_run_tag)
        _ = self.bench_session.store  # a store that cannot be opened stops the run before any test


def harness_state(config) -> HarnessState:
    """The one state object the plugin's modules share."""
    return config.stash[_KEY]


def install(config) -> HarnessState:
    state = HarnessState(config)
    config.stash[_KEY] = state
    return state


# ------------------------------------------------------------ what kind of run this is


def is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def is_xdist_controller(config) -> bool:
    # (xdist registers its "dsession" plugin in its own pytest_configure, which may run after ours)
    return (not is_worker(config) and bool(getattr(config.option, "numprocesses", None))
            and getattr(config.option, "dist", "no") != "no" and not config.getoption("collectonly"))


def collects_suites(config) -> bool:
    """This pytest run collects the benchmark suites (not, say, the harness's own tests)."""
    return any("suites" in Path(str(a)).parts for a in config.args)


def benchmarking(config) -> bool:
    """This pytest run measures devices: a harness option names what to measure, or it
    collects the suites. Otherwise the plugin stays out of the way (and imports nothing heavy)."""
    opt = config.option
    return bool(opt.harness_devices or opt.harness_devices_dir or opt.harness_models_dir
                or opt.harness_run_tag is not None or collects_suites(config))
