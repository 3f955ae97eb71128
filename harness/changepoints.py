"""Change points: the runs where a nightly figure (a key's p50, say) moves to a new level.

Binary segmentation with a least-squares cost (the method of ruptures' `Binseg` with
`model="l2"`), on the logarithm of the values (a shift is a ratio, whatever the latency)
after a running median of 3 (one odd night is not a change). A split is kept only when its
gain beats a BIC-like penalty scaled by the series' own night-to-night noise (the MAD of
successive differences) and the level moves by at least `min_effect` (medians either side),
so that what is marked is both clear against the noise and large enough to matter.
Written out here rather than imported: with cumulative sums each split search is one numpy
pass, so a year of nights for a lab's 200 series takes milliseconds, where a general cost
object per candidate split takes seconds.
"""
from __future__ import annotations

import numpy as np


def change_points(values, min_size: int = 5, min_effect: float = 0.02, penalty: float = 5.0) -> list[int]:
    """Indices into `values` (positive numbers, in time order) where a new level starts."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.all(values > 0):
        return []
    y = np.log(values)
    n = y.size
    if n < 2 * min_size or not np.all(np.isfinite(y)):
        return []
    smooth = y.copy()
    if n >= 3:
        smooth[1:-1] = np.median(np.stack([y[:-2], y[1:-1], y[2:]]), axis=0)
    steps = np.diff(y)
    noise = np.median(np.abs(steps - np.median(steps))) / 0.6745 / np.sqrt(2)  # per-night sigma
    noise = max(noise, 1e-3)  # a perfectly steady series: still needs a real step to split
    threshold = penalty * noise ** 2 * np.log(n)
    found, pending = [], [(0, n)]
    while pending:
        start, end = pending.pop()
        if end - start < 2 * min_size:
            continue
        segment = smooth[start:end]
        size = segment.size
        sums = np.cumsum(segment)
        left = np.arange(min_size, size - min_size + 1)  # sizes of the left part
        left_mean = sums[left - 1] / left
        right_mean = (sums[-1] - sums[left - 1]) / (size - left)
        gain = left * (size - left) / size * (left_mean - right_mean) ** 2
        best = int(np.argmax(gain))
        split = start + int(left[best])
        effect = np.expm1(abs(np.median(smooth[split:end]) - np.median(smooth[start:split])))
        if gain[best] > threshold and effect >= min_effect:
            found.append(split)
            pending += [(start, split), (split, end)]
    return sorted(found)
