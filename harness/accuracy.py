"""Top-1 accuracy on a device against the host's, with a stated tolerance.

The same variant on another CPU's kernels (aarch64 vs x86 int8 rounding, XNNPACK vs the
built-in kernels) may flip a borderline sample: the int8-static digits CNN scores 350/360
on an aarch64 board and 351/360 on x86. So a device agrees with the host when the two
differ by at most one sample of the evaluation set plus the device's
`settings.accuracy_tolerance_pt` (points of top-1 accuracy, default 0.5); anything beyond
means the device computes something else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class HostComparison:
    device: float        # top-1 on the device, a fraction
    host: float          # top-1 of the same variant on the host
    n: Optional[int]     # samples the device evaluated (None: unknown, no one-sample allowance)
    tolerance_pt: float  # the device's stated tolerance beyond one sample

    @property
    def difference_pt(self) -> float:
        return 100.0 * (self.device - self.host)

    @property
    def allowed_pt(self) -> float:
        return (100.0 / self.n if self.n else 0.0) + self.tolerance_pt

    @property
    def agrees(self) -> bool:
        # a hair of slack: 350/360 vs 351/360 is exactly one sample
        return abs(self.difference_pt) <= self.allowed_pt + 1e-9

    def describe(self) -> str:
        """Both figures, their difference and what was allowed, e.g. for a failed test."""
        def pct(x):
            return f"{100 * x:.2f}%" + (f" ({round(x * self.n)}/{self.n})" if self.n else "")

        sample = f"1 sample of {self.n} + " if self.n else ""
        return (f"device top-1 {pct(self.device)} vs host {pct(self.host)}: {self.difference_pt:+.2f} points, "
                f"{'within' if self.agrees else 'beyond'} the tolerance of {self.allowed_pt:.2f} points "
                f"({sample}accuracy_tolerance_pt {self.tolerance_pt:g})")


def compare_with_host(device: float, host: float, n: Optional[int], tolerance_pt: float) -> HostComparison:
    if tolerance_pt < 0:
        raise ValueError(f"accuracy_tolerance_pt: expected a number >= 0, got {tolerance_pt!r}")
    return HostComparison(device=device, host=host, n=n or None, tolerance_pt=float(tolerance_pt))
