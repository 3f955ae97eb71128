"""Where a meter takes its time from: the stamps on its samples and the waits between reads.

Meters never call ``time.time()`` or sleep themselves; they ask their ``clock``. The
default is the machine's own clock. A test hands ``open_meters`` a clock it moves itself
(tests/power_helpers.py), so how many samples a trace holds and where they fall never
depend on how busy the machine is.
"""
from __future__ import annotations

import threading
import time


class Clock:
    """The machine's clock."""

    def time(self) -> float:
        """Host wall-clock seconds: what samples and window edges are stamped with."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds for scheduling reads (never jumps when the wall clock is set)."""
        return time.monotonic()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Until ``event`` is set or ``seconds`` have passed; True when the event was set."""
        return event.wait(seconds)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = Clock()
