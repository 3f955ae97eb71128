"""The plugin's command-line options, and their checks before anything runs.

    --device NAME|TAG|GLOB ...       what to measure on (harness group)
    --baseline / --compare-fail      lab CI: compare with an earlier run and gate on it
    --lease-wait / --lease-timeout   a board is locked through the store before it is used
"""
from __future__ import annotations

import pytest

from ..errors import HarnessError
from ..lease import DEFAULT_TTL_S, DEFAULT_WAIT_S
from ..metrics import gate_help
from .state import install


def pytest_addoption(parser):
    group = parser.getgroup("harness", "edge benchmarking harness")
    group.addoption("--device", action="append", dest="harness_devices", metavar="NAME",
                    help="devices to benchmark on: a device name, or a word that selects every "
                         "device whose name starts with it or whose tags carry it, or a glob "
                         "(repeatable; default: local)")
    group.addoption("--devices-dir", dest="harness_devices_dir", metavar="DIR",
                    help="inventory directory of device YAML files (default: <rootdir>/devices)")
    group.addoption("--models-dir", dest="harness_models_dir", metavar="DIR",
                    help="directory of model manifests (default: <rootdir>/models)")
    group.addoption("--variants", action="append", dest="harness_variants", metavar="GLOB",
                    help="only variants whose 'model/variant' id matches (repeatable), e.g. 'digits-cnn/*'")
    group.addoption("--store", dest="harness_store", metavar="URL",
                    help="measurement store URL (default: sqlite:///<rootdir>/reports/harness.sqlite)")
    group.addoption("--report", dest="harness_report", metavar="PATH",
                    help="HTML report written at the end (default: reports/report.html; '' for none)")
    group.addoption("--min-duration", dest="harness_min_duration", type=float, metavar="SECONDS",
                    help="minimum timed-loop duration per measurement (with the minimum count)")
    group.addoption("--warmup", dest="harness_warmup", type=int, metavar="N",
                    help="untimed inferences before the timed loop")
    group.addoption("--rounds", dest="harness_rounds", type=int, metavar="R",
                    help="rounds per measurement: every variant of a device once per round, in a "
                         "shuffled order (default: the device's settings.rounds, 3 on local and ssh)")
    group.addoption("--order-seed", dest="harness_order_seed", type=int, metavar="N",
                    help="seed of the rounds' random order (default: drawn and stored with the run)")
    group.addoption("--run-tag", dest="harness_run_tag", metavar="TAG", help="a label stored with this run")
    group.addoption("--profile", dest="harness_profile", action="store_true", default=False,
                    help="per-operator profiles after the last round's timed loop, with the device's measured "
                         "peak and roofline (harness/profile.py; off by default)")

    lab = parser.getgroup("harness-lab", "edge benchmarking harness: lab CI")
    lab.addoption("--baseline", dest="harness_baseline", metavar="RUN|latest|TAG",
                  help="compare this run with an earlier run from the store: its id (or a unique "
                       "prefix), 'latest' (the newest earlier run with measurements) or a run tag")
    lab.addoption("--compare-fail", dest="harness_compare_fail", action="append", metavar="EXPR",
                  help="fail on a significant regression beyond a threshold (repeatable): "
                       + gate_help().replace("%", "%%"))
    lab.addoption("--lease-wait", dest="harness_lease_wait", type=float, default=DEFAULT_WAIT_S,
                  metavar="SECONDS", help="wait this long for a board another run holds, then skip "
                                          f"its tests naming the holder (default {DEFAULT_WAIT_S:.0f})")
    lab.addoption("--lease-timeout", dest="harness_lease_timeout", type=float, default=DEFAULT_TTL_S,
                  metavar="SECONDS", help="a lease expires this long after its last renewal, so a "
                                          f"killed job frees its boards (default {DEFAULT_TTL_S:.0f})")
    lab.addoption("--no-lease", dest="harness_no_lease", action="store_true",
                  help="do not lock boards through the store (ad hoc runs on a private machine)")


@pytest.hookimpl(tryfirst=True)  # the state exists before any other module's pytest_configure
def pytest_configure(config):
    opt = config.option
    if opt.harness_rounds is not None and opt.harness_rounds < 1:
        raise pytest.UsageError(f"--rounds: expected an integer >= 1, got {opt.harness_rounds}")
    if opt.harness_lease_timeout <= 0 or opt.harness_lease_wait < 0:
        raise pytest.UsageError("--lease-timeout must be > 0 and --lease-wait >= 0 (seconds)")
    state = install(config)
    if opt.harness_compare_fail:
        from .. import compare   # numpy and scipy: only when gates are asked for

        try:
            state.gates = compare.parse_gates(opt.harness_compare_fail)
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None
    if state.gates and not state.baseline_ref:
        raise pytest.UsageError("--compare-fail needs --baseline RUN|latest|TAG to compare with")
