"""Where a measurement came from: harness version, git commit, host, time, settings."""
from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

from . import __version__
from .redaction import redact_argv

REPO = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def git_commit(path: str = str(REPO)) -> str | None:
    """The commit of the harness checkout (+ '-dirty' if it has uncommitted changes)."""
    if os.environ.get("HARNESS_GIT_COMMIT"):
        return os.environ["HARNESS_GIT_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def controller() -> dict:
    """Facts about the machine driving the run (not the device under test)."""
    return {
        "harness_version": __version__,
        "git_commit": git_commit(),
        "controller_host": platform.node(),
        "controller_python": platform.python_version(),
        "argv": [os.path.basename(sys.argv[0])] + redact_argv(sys.argv[1:]),  # no passwords stored
    }


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()
