"""Leases: a board is locked for a run through the store, so two CI jobs never measure on
the same board at once (labgrid's places, kept in the measurement store).

A lease expires `ttl_s` after its last renewal. A background thread renews every lease this
process holds while it lives, so a live run keeps its boards and a crashed (killed) job's
boards come free by themselves once its leases expire. Needs no server beyond the store.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import threading
import time
from typing import Optional

from .errors import DeviceError

DEFAULT_TTL_S = 60.0
DEFAULT_WAIT_S = 120.0
POLL_S = 1.0


class LeaseBusy(DeviceError):
    """The board is held by another run; carries who holds it and until when."""

    def __init__(self, device: str, holder: str, expires_at: Optional[float], waited_s: float):
        self.device, self.holder, self.expires_at = device, holder, expires_at
        until = _when(expires_at) if expires_at else "?"
        super().__init__(f"{device}: leased by {holder} until {until} (renewed while that run lives); "
                         f"waited {waited_s:.0f}s (--lease-wait)")


def _when(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# Boards another scheduler locks (a labgrid place is acquired through its coordinator):
# name -> that scheduler. No store lease is taken for them, so the two never lock one board
# twice; the lease table stays for every other board.
_deferred: dict[str, str] = {}


def defer_to(device: str, scheduler: str) -> None:
    _deferred[device] = scheduler


def deferred(device: str) -> Optional[str]:
    return _deferred.get(device)


def default_holder() -> str:
    return f"{platform.node()}:{os.getpid()}"


class LeaseManager:
    """Takes, renews and releases the leases of one pytest process."""

    def __init__(self, store, ttl_s: float = DEFAULT_TTL_S, wait_s: float = DEFAULT_WAIT_S,
                 holder: Optional[str] = None, run_id: Optional[str] = None, poll_s: float = POLL_S):
        if ttl_s <= 0:
            raise ValueError("lease ttl must be > 0")
        self.store, self.ttl_s, self.wait_s, self.poll_s = store, float(ttl_s), float(wait_s), poll_s
        self.holder = holder or default_holder()
        self.run_id = run_id
        self.held: set[str] = set()
        self.lost: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def acquire(self, device: str) -> None:
        """Take the device's lease, waiting up to wait_s; LeaseBusy names the holder if not."""
        if device in _deferred:
            return  # locked by its own scheduler (labgrid) when the device connects
        start = time.monotonic()
        while True:
            try:
                taken = self.store.try_lease(device, self.holder, self.ttl_s, self.run_id)
            except Exception as exc:  # the store is unreachable: nothing may be measured unlocked
                raise DeviceError(f"{device}: cannot take its lease in the store: "
                                  f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None
            if taken:
                with self._lock:
                    self.held.add(device)
                self._start_renewing()
                return
            waited = time.monotonic() - start
            if waited >= self.wait_s:
                current = next((r for r in self.store.leases() if r["device"] == device), None)
                raise LeaseBusy(device, current["holder"] if current else "another run",
                                current["expires_at"] if current else None, waited)
            time.sleep(min(self.poll_s, max(0.05, self.wait_s - waited)))

    def _start_renewing(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._renew_loop, name="harness-lease-renewal",
                                            daemon=True)  # dies with the process: the lease then expires
            self._thread.start()

    def _renew_loop(self):
        interval = max(0.2, self.ttl_s / 3.0)  # two renewals may fail before the lease lapses
        while not self._stop.wait(interval):
            with self._lock:
                devices = list(self.held)
            for device in devices:
                try:
                    if not self.store.renew_lease(device, self.holder, self.ttl_s, self.run_id):
                        # expired under us (a long stall): another run may hold the board now;
                        # stop renewing and let check() refuse further measurements on it
                        with self._lock:
                            self.lost.add(device)
                            self.held.discard(device)
                except Exception:
                    pass  # a store hiccup: the next renewal tries again before the lease lapses

    def check(self, device: str) -> None:
        """Refuse to measure on a board whose lease lapsed: its numbers could be another
        run's load, and that other run may be measuring on it right now."""
        if device in self.lost:
            raise DeviceError(f"{device}: this run's lease on the board lapsed (not renewed within "
                              f"{self.ttl_s:.0f} s); another run may be using it, so nothing more is "
                              f"measured on it in this run")

    def release_all(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            devices, self.held = list(self.held), set()
        for device in devices:
            try:
                self.store.release_lease(device, self.holder)
            except Exception:
                pass  # it expires by itself


def describe(row: dict, now: Optional[float] = None) -> str:
    now = time.time() if now is None else now
    state = "expired" if row["expires_at"] < now else f"expires in {row['expires_at'] - now:.0f}s"
    return (f"{row['device']}  held by {row['holder']}" + (f" (run {row['run_id']})" if row.get("run_id") else "")
            + f" since {_when(row['acquired_at'])} until {_when(row['expires_at'])} ({state})")
