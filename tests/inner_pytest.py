"""Running an inner pytest (the suites, a plugin) in a subprocess, as a user runs it.

Always this interpreter's pytest (`sys.executable -m pytest`, never whichever is first on
PATH) and this checkout's harness first on the path; an outer xdist worker's variables are
dropped, or the inner pytest-benchmark would disable itself and the inner session would
think it is a worker.

When pytester (tests/conftest.py loads it) is the right tool instead:
`pytester.runpytest()` runs in this process, fast, for a plugin hook's outcome on a few
generated files where what this process has already imported does not matter;
`pytester.runpytest_subprocess()` gives a fresh interpreter with pytester's scratch
directory and `assert_outcomes()`. Use this module when the inner run must be the
user's own command: the repository's suites with cwd at the checkout, an argv wrapped in
cgexec, a run a test kills, or any run from a test that xdist may distribute (pytester
does not drop the outer worker's PYTEST_XDIST* variables).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from paths import ROOT


def pytest_argv(*args) -> list:
    """argv of an inner `python -m pytest ARGS` without its cache (nothing written to the repo)."""
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *map(str, args)]


def inner_env(base: Optional[dict] = None, **extra) -> dict:
    """`base` (default: this process's environment) with this checkout first on PYTHONPATH."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def run_inner(argv: list, cwd: Path = ROOT, env: Optional[dict] = None, timeout: float = 600):
    """Run `argv` (a pytest_argv, or one wrapped in cgexec...) to its end, output captured as text."""
    return subprocess.run(argv, cwd=cwd, env=inner_env(env), capture_output=True, text=True, timeout=timeout)


def start_inner(argv: list, log: Path, cwd: Path = ROOT, env: Optional[dict] = None) -> subprocess.Popen:
    """Start `argv` in its own session (so a test can kill it), output to `log`."""
    out = open(log, "w")
    return subprocess.Popen(argv, cwd=cwd, env=inner_env(env), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


QUICK = ["--min-duration", "0.05", "--warmup", "2", "--report", "", "-q", "-rs"]


def suites(devices_dir, store, *devices, variants=("digits-mlp/*",)) -> list:
    """argv of the user's suites on `devices` from `devices_dir`, short loops, no report."""
    argv = pytest_argv(ROOT / "suites", "--devices-dir", devices_dir, "--store", store, *QUICK)
    for d in devices:
        argv += ["--device", d]
    for v in variants:
        argv += ["--variants", v]
    return argv
