"""The board lock: one harness run on an SSH board at a time, whatever store each run uses.

Store leases (harness/lease.py) only see runs that share a store. This lock lives on the
board itself: a small process started over the run's own SSH connection holds an
exclusive flock on ``<workdir>/board.lock`` until its stdin closes, i.e. until the run
closes the connection, exits or is killed (the kernel closes the socket, sshd ends the
session, the process reads EOF and the lock is released). A run that finds the board
locked waits up to ``ssh.lock_wait_s`` and then gives up with who holds it.

The process is Python (the board's interpreter already runs the runner; 3.8+, stdlib).
"""
from __future__ import annotations

import logging
import os
import platform
import posixpath
import select
import time

from ..errors import DeviceError
from ..lease import LeaseBusy

log = logging.getLogger("harness.devices.ssh")

LOCK_NAME = "board.lock"
BUSY_EXIT = 75  # EX_TEMPFAIL
# argv: lock path, this run's id, seconds to wait. Prints "busy <holder>" once while it
# waits, "locked" once it holds the lock, then holds it until stdin closes. A holder left
# by this same run (a dropped connection the board has not noticed yet) is stopped.
HOLDER = r'''
import fcntl, os, sys, time
path, me, wait_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
f = open(path, "a+")
deadline = time.time() + wait_s
told = False
while True:
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError:
        pass
    f.seek(0)
    held = f.read().strip()
    fields = dict(x.split("=", 1) for x in held.split()[1:] if "=" in x)
    if held.split(" ", 1)[0] == me and fields.get("pid", "").isdigit():
        try:
            with open("/proc/%s/cmdline" % fields["pid"], "rb") as c:
                if path.encode() in c.read():
                    os.kill(int(fields["pid"]), 9)
        except OSError:
            pass
        time.sleep(0.2)
        continue
    if not told:
        sys.stdout.write("busy %s\n" % (held or "another run"))
        sys.stdout.flush()
        told = True
    if time.time() > deadline:
        sys.exit(75)
    time.sleep(0.5)
try:
    f.seek(0)
    f.truncate()
    f.write("%s pid=%d since=%s\n" % (me, os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    f.flush()
except OSError:
    pass
sys.stdout.write("locked\n")
sys.stdout.flush()
sys.stdin.read()
'''


class BoardInUse(LeaseBusy):
    """Another harness run holds the board's own lock (it may write to another store)."""

    def __init__(self, device: str, holder: str, path: str, waited_s: float):
        DeviceError.__init__(self, f"{device}: in use by {holder} (the board lock {path}, held by a run that "
                                   f"may use another store); waited {waited_s:.0f} s (ssh.lock_wait_s)")
        self.device, self.holder, self.expires_at = device, holder, None


def run_id() -> str:
    """Who this run is, as the lock file shows it."""
    return f"{platform.node()}:{os.getpid()}"


def take(link, python: str, workdir: str, label: str, wait_s: float):
    """Hold the board lock over `link`; returns the channel that holds it (closed with the link)."""
    path = posixpath.join(workdir, LOCK_NAME)
    chan = link.start([python, "-c", HOLDER, path, run_id(), f"{wait_s:g}"])
    start = time.monotonic()
    deadline = start + wait_s + max(30.0, link.settings.connect_timeout_s)
    out, err, told = b"", b"", False
    while True:
        while chan.recv_ready():
            out += chan.recv(4096)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(4096)
        lines = out.decode(errors="replace").splitlines()
        if "locked" in lines:
            return chan
        busy = next((line[5:] for line in lines if line.startswith("busy ")), None)
        if busy and not told:
            log.warning("%s: waiting up to %g s for the board: in use by %s (its lock %s)", label, wait_s,
                        busy, path)
            told = True
        if chan.exit_status_ready() and not chan.recv_ready():
            code = chan.recv_exit_status()
            chan.close()
            if code == BUSY_EXIT:
                raise BoardInUse(label, busy or "another run", path, time.monotonic() - start)
            if code == 127:
                raise DeviceError(f"{label}: the board's python {python!r} was not found (exit 127): "
                                  f"{err.decode(errors='replace').strip()[-300:]}")
            raise DeviceError(f"{label}: cannot take the board lock {path} (exit {code}): "
                              f"{err.decode(errors='replace').strip()[-300:]}")
        if time.monotonic() > deadline:
            chan.close()
            raise DeviceError(f"{label}: taking the board lock {path} did not finish within "
                              f"{deadline - start:.0f} s")
        select.select([chan], [], [], 0.2)
