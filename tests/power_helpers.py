"""Shared helpers of the power tests (not a test module).

The clocks here replace a meter's real one (harness/power/clock.py), so a test decides how
much time passes and how many samples a trace holds, whatever the machine's load.
``VirtualClock`` drives polling meters: time moves only when the test advances it, and each
meter thread is woken at its exact deadline (``FollowingClock`` keeps it on the wall clock
beside a real runner). ``ArrivalClock`` stamps streamed lines: each
reading is one step later than the last, and the test waits for a number of them
(``WallArrivalClock`` counts them the same way on the machine's own clock).
"""
import sys
import threading
import time

from harness.inventory import parse_device
from paths import TESTS

FAKES = TESTS / "fakes"
# Seconds a test waits for a meter thread before it fails (instead of hanging); it bounds
# a broken meter, it is never a measurement.
PATIENCE_S = 60.0
START = 1_800_000_000.0  # a wall-clock time, far from the real one, so a mix-up shows


def fake(name: str) -> list:
    """argv running a fake program with this interpreter (no reliance on the shebang)."""
    return [sys.executable, str(FAKES / name)]


def spec_with(power, name="board"):
    return parse_device({"kind": "local", "power": power}, f"devices/{name}.yaml", name)


class VirtualClock:
    """Time that moves only in ``advance``/``sleep``; ``meters`` threads wait on it.

    ``advance(s)`` moves to each waiting meter's deadline in turn and goes on only once
    every woken meter has done its read and waits again: no read is late, none is missed,
    and a reading is stamped with the exact deadline (time stands still while it runs).
    """

    def __init__(self, meters: int = 1, start: float = START):
        self._now = start
        self._meters = meters
        self._cond = threading.Condition()
        self._deadlines = {}  # a waiting thread's token -> the time it wakes at

    def time(self) -> float:
        with self._cond:
            return self._now

    monotonic = time

    def wait(self, event: threading.Event, seconds: float) -> bool:
        token = object()
        with self._cond:
            self._deadlines[token] = self._now + max(seconds, 0.0)
            self._cond.notify_all()
            try:
                # event.set() does not notify this condition: look again now and then.
                while not event.is_set() and self._now < self._deadlines[token]:
                    self._cond.wait(0.005)
            finally:
                del self._deadlines[token]
                self._cond.notify_all()
        return event.is_set()

    def _settled(self) -> bool:
        return (len(self._deadlines) >= self._meters
                and all(d > self._now for d in self._deadlines.values()))

    def advance(self, seconds: float) -> None:
        with self._cond:
            target = self._now + seconds
            while True:
                if not self._cond.wait_for(self._settled, PATIENCE_S):
                    raise AssertionError(f"{self._meters} meter thread(s) never came back to wait "
                                         f"({len(self._deadlines)} waiting)")
                nxt = min(self._deadlines.values(), default=float("inf"))
                if nxt > target:
                    self._now = target
                    return
                self._now = nxt
                self._cond.notify_all()

    sleep = advance  # measure_with_meters' idle baseline

    def advance_to(self, t: float) -> None:
        self.advance(max(0.0, t - self.time()))


class FollowingClock(VirtualClock):
    """A VirtualClock kept on the machine's wall clock, for a real runner whose window is
    stamped in real time: the meters still read at every interval of it (a stall of the
    machine delays reads, it never drops one), stamped on the interval's grid."""

    def __init__(self, meters: int = 1):
        super().__init__(meters, start=time.time())

    def follow(self, work):
        """``work()`` on a thread while this clock follows the wall clock; its result."""
        outcome = {}

        def target():
            try:
                outcome["value"] = work()
            except BaseException as exc:  # handed to the caller
                outcome["error"] = exc

        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        while worker.is_alive():
            self.advance_to(time.time())
            worker.join(0.005)
        self.advance_to(time.time())
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def sleep(self, seconds: float) -> None:
        self.follow(lambda: time.sleep(seconds))


class ArrivalClock:
    """Each reading is ``step`` s after the one before; the test waits for readings made
    by meter threads (one per streamed line, and one when the stream ends)."""

    def __init__(self, step: float = 0.02, start: float = START):
        self._now = start
        self._step = step
        self._owner = threading.get_ident()
        self._cond = threading.Condition()
        self.readings = 0  # by threads other than the test's

    def time(self) -> float:
        with self._cond:
            self._now += self._step
            self._count()
            return self._now

    monotonic = time

    def _count(self) -> None:
        """(holding the lock) One more reading, when a meter thread made it."""
        if threading.get_ident() != self._owner:
            self.readings += 1
            self._cond.notify_all()

    def advance(self, seconds: float) -> None:
        """A silence: ``seconds`` pass with no line."""
        with self._cond:
            self._now += seconds

    def wait_for_readings(self, n: int) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.readings >= n, PATIENCE_S):
                raise AssertionError(f"the meter stamped {self.readings} line(s), {n} expected")

    def wait(self, event, seconds):
        raise AssertionError("a streaming meter does not wait on its clock")

    sleep = wait


class WallArrivalClock(ArrivalClock):
    """The machine's wall clock, its readings counted as ArrivalClock's: for a test of
    real-time alignment, which still waits for lines, never for a time."""

    def time(self) -> float:
        with self._cond:
            self._count()
            return time.time()

    monotonic = time

    def advance(self, seconds: float) -> None:
        raise AssertionError("the wall clock cannot be moved")


def recorded(m, meanwhile):
    """start, ``meanwhile()``, stop (also when it fails): the meter's one trace."""
    m.start()
    try:
        meanwhile()
    finally:
        trace = m.stop()
    return trace


def record_polls(m, clock: VirtualClock, seconds: float):
    """start, ``seconds`` of virtual time, stop: one trace with a read at every interval."""
    return recorded(m, lambda: clock.advance(seconds))


def record_lines(m, clock: ArrivalClock, lines: int):
    """start, wait until the meter has stamped ``lines`` lines, stop."""
    return recorded(m, lambda: clock.wait_for_readings(lines))


def record_released(m, clock: ArrivalClock, release):
    """start, ``release()`` (a peer sends its lines and returns how many), wait until the
    meter has stamped every one of them, stop."""
    def meanwhile():
        before = clock.readings
        clock.wait_for_readings(before + release())
    return recorded(m, meanwhile)
