"""Leases: a board is locked for a run through the store, so two CI jobs never measure on
the same board at once (labgrid's places, kept in the measurement store).

A lease expires `ttl_s` after its last renewal. A background thread renews every lease this
process holds while it lives, so a live run keeps its boards and a crashed (killed) job's
boards come free by themselves once its leases expire. Needs no server beyond the store.

A lease lives in ONE store: two runs that write to two different stores (two SQLite
files, or a SQLite file and the lab's PostgreSQL) do not see each other's leases and may
measure on the same board at once. A lab shares one store URL between its CI jobs.

While a run waits for a board it says so, once when the wait begins and then every
NOTICE_EVERY_S: who holds the board, until when, and how long it will wait (``notify``;
the pytest plugin shows it in the terminal, through pytest's capture).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import threading
import time
from typing import Callable, Optional

from .errors import DeviceError

DEFAULT_TTL_S = 60.0
DEFAULT_WAIT_S = 120.0
POLL_S = 1.0
NOTICE_EVERY_S = 15.0

log = logging.getLogger("harness.lease")


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
    """The scheduler that locks ``device`` instead of the lease table, or None."""
    return _deferred.get(device)


def _sql():
    """SQLAlchemy and the leases table, imported on first use: the pytest plugin imports this
    module's constants in every pytest run, benchmarking or not (harness/pytestplugin/options.py)."""
    import sqlalchemy as sa

    from .store_tables import leases_table, open_engine

    return sa, leases_table, open_engine


def default_holder() -> str:
    return f"{platform.node()}:{os.getpid()}"


class LeaseTable:
    """The store's `leases` table: one row per locked board, with its holder and expiry.

    Each call is one atomic statement in its own transaction, on an engine of its own (no
    pool: a connection per call), so a renewal never waits behind, or commits, a measurement
    write. Expiry times are wall-clock epoch seconds from `clock`: the holders are processes
    on different hosts sharing one store.
    """

    def __init__(self, url, clock: Callable[[], float] = time.time):
        sa, _, open_engine = _sql()
        self.engine = open_engine(url, poolclass=sa.pool.NullPool)
        self.clock = clock

    def take(self, device: str, holder: str, ttl_s: float, run_id: Optional[str] = None) -> bool:
        """Take the device's lease if it is free, expired or already ours. Atomic: an insert
        (fails if a row exists) or a conditional update (matches only a stale or own row)."""
        now = self.clock()
        values = dict(holder=holder, run_id=run_id, acquired_at=now, expires_at=now + ttl_s)
        sa, t, _ = _sql()
        with self.engine.begin() as conn:
            taken = conn.execute(
                t.update().where(t.c.device == device)
                .where(sa.or_(t.c.expires_at < now, t.c.holder == holder))
                .values(**values)).rowcount
        if taken:
            return True
        try:
            with self.engine.begin() as conn:
                conn.execute(t.insert().values(device=device, **values))
            return True
        except sa.exc.IntegrityError:
            return False  # someone holds it (or took it between our two statements)

    def renew(self, device: str, holder: str, ttl_s: float, run_id: Optional[str] = None) -> bool:
        """Push the expiry of our lease `ttl_s` ahead; False if the lease is no longer ours."""
        values = {"expires_at": self.clock() + ttl_s}
        if run_id is not None:
            values["run_id"] = run_id  # known once the run's first measurement is stored
        _, t, _ = _sql()
        with self.engine.begin() as conn:
            return bool(conn.execute(
                t.update().where(t.c.device == device).where(t.c.holder == holder).values(**values)).rowcount)

    def release(self, device: str, holder: str) -> None:
        _, t, _ = _sql()
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.device == device).where(t.c.holder == holder))

    def all(self) -> list[dict]:
        """Every lease row (expired ones too, until taken or released), by device."""
        sa, t, _ = _sql()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.device)).mappings().all()
        return [dict(r) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


class LeaseManager:
    """Takes, renews and releases the leases of one pytest process.

    `clock` and `sleep` (monotonic seconds) time the waits for a board and the freshness of
    each lease; tests pass a fake pair. With `renew_in_background` False no thread is started
    and the owner calls renew_once() itself (a test steps the renewals one by one).
    """

    def __init__(self, store, ttl_s: float = DEFAULT_TTL_S, wait_s: float = DEFAULT_WAIT_S,
                 holder: Optional[str] = None, run_id: Optional[str] = None, poll_s: float = POLL_S,
                 notify: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 renew_in_background: bool = True, renew_every_s: Optional[float] = None):
        if ttl_s <= 0:
            raise ValueError("lease ttl must be > 0")
        self.table: LeaseTable = store.leases
        self.ttl_s, self.wait_s, self.poll_s = float(ttl_s), float(wait_s), poll_s
        self.holder = holder or default_holder()
        self.run_id = run_id
        self.notify = notify  # shows a wait to the user (the log always gets it)
        self.clock, self.sleep = clock, sleep
        self.renew_in_background = renew_in_background
        # two renewals may fail before the lease lapses
        self.renew_every_s = renew_every_s if renew_every_s is not None else max(0.2, self.ttl_s / 3.0)
        self.held: set[str] = set()
        self.lost: set[str] = set()
        self.renewed_at: dict[str, float] = {}  # device -> clock() of the last successful take/renewal
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def acquire(self, device: str) -> None:
        """Take the device's lease, waiting up to wait_s; LeaseBusy names the holder if not."""
        if deferred(device) is not None:
            return  # locked by its own scheduler (labgrid) when the device connects
        start = self.clock()
        next_notice = 0.0
        while True:
            try:
                taken = self.table.take(device, self.holder, self.ttl_s, self.run_id)
            except Exception as exc:  # the store is unreachable: nothing may be measured unlocked
                raise DeviceError(f"{device}: cannot take its lease in the store: "
                                  f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None
            if taken:
                with self._lock:
                    self.held.add(device)
                    self.renewed_at[device] = self.clock()
                self._start_renewing()
                return
            waited = self.clock() - start
            if waited >= self.wait_s:
                current = self._current(device)
                raise LeaseBusy(device, current["holder"] if current else "another run",
                                current["expires_at"] if current else None, waited)
            if waited >= next_notice:
                self._tell_waiting(device, waited)
                next_notice = waited + NOTICE_EVERY_S
            self.sleep(min(self.poll_s, max(0.05, self.wait_s - waited)))

    def _current(self, device: str) -> Optional[dict]:
        try:
            return next((r for r in self.table.all() if r["device"] == device), None)
        except Exception:  # only for the message: the wait goes on
            return None

    def _tell_waiting(self, device: str, waited: float) -> None:
        row = self._current(device)
        held = (f"held by {row['holder']}" + (f" (run {row['run_id']})" if row.get("run_id") else "")
                + f" until {_when(row['expires_at'])}, renewed while that run lives") if row else "held by another run"
        text = (f"{device}: waiting for the board's lease: {held}; waited {waited:.0f} s of "
                f"{self.wait_s:.0f} s (--lease-wait)")
        log.warning("%s", text)
        if self.notify is not None:
            try:
                self.notify(text)
            except Exception:  # a closed terminal must not stop the wait
                log.debug("the wait notice could not be shown", exc_info=True)

    def _start_renewing(self):
        if self._thread is None and self.renew_in_background:
            self._thread = threading.Thread(target=self._renew_loop, name="harness-lease-renewal",
                                            daemon=True)  # dies with the process: the lease then expires
            self._thread.start()

    def _renew_loop(self):
        while not self._stop.wait(self.renew_every_s):
            self.renew_once()

    def renew_once(self) -> None:
        """Renew every lease this process holds. A lease found taken by another run is lost
        (ensure_held() then refuses the board); a store error is logged and the next renewal tries
        again, and ensure_held() refuses the board once its last good renewal is older than the ttl."""
        with self._lock:
            devices = list(self.held)
        for device in devices:
            try:
                renewed = self.table.renew(device, self.holder, self.ttl_s, self.run_id)
            except Exception as exc:
                log.warning("%s: lease renewal failed (%s); retrying, the lease lapses %.0f s after its "
                            "last renewal", device, (str(exc).strip().splitlines() or [type(exc).__name__])[0],
                            self.ttl_s)
                continue
            with self._lock:
                if renewed:
                    self.renewed_at[device] = self.clock()
                else:
                    # expired under us (a long stall): another run may hold the board now;
                    # stop renewing and let ensure_held() refuse further measurements on it
                    log.warning("%s: the lease was taken by another run; no more measurements on it", device)
                    self.lost.add(device)
                    self.held.discard(device)

    def ensure_held(self, device: str) -> None:
        """Refuse to measure on a board whose lease lapsed or may have: its numbers could be
        another run's load, and that other run may be measuring on it right now."""
        if device in self.lost:
            raise DeviceError(f"{device}: this run's lease on the board lapsed (not renewed within "
                              f"{self.ttl_s:.0f} s); another run may be using it, so nothing more is "
                              f"measured on it in this run")
        renewed_at = self.renewed_at.get(device)
        if device in self.held and renewed_at is not None:
            age = self.clock() - renewed_at
            if age > self.ttl_s:
                raise DeviceError(f"{device}: this run's lease on the board is stale: last renewed {age:.0f} s "
                                  f"ago, beyond its {self.ttl_s:.0f} s (the store did not answer the "
                                  f"renewals); another run may take it, so it is not measured on now")

    def release_all(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            devices, self.held = list(self.held), set()
        for device in devices:
            try:
                self.table.release(device, self.holder)
            except Exception:
                log.info("%s: the lease was not released (it expires by itself)", device, exc_info=True)


def describe(row: dict, now: Optional[float] = None) -> str:
    now = time.time() if now is None else now
    state = "expired" if row["expires_at"] < now else f"expires in {row['expires_at'] - now:.0f}s"
    return (f"{row['device']}  held by {row['holder']}" + (f" (run {row['run_id']})" if row.get("run_id") else "")
            + f" since {_when(row['acquired_at'])} until {_when(row['expires_at'])} ({state})")
