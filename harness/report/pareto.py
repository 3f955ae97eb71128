"""Pareto selection: pure, on plain sequences (tested without plotly or a device)."""
from __future__ import annotations

import math
from typing import Sequence


def pareto_mask(cost: Sequence[float], gain: Sequence[float]) -> list[bool]:
    """True for points no other point dominates (lower-or-equal cost AND higher-or-equal gain,
    strictly better in one). Points with a missing value are never on the front."""
    pts = list(zip(cost, gain))
    valid = [c is not None and g is not None and not (isinstance(c, float) and math.isnan(c))
             and not (isinstance(g, float) and math.isnan(g)) for c, g in pts]
    mask = []
    for i, (c, g) in enumerate(pts):
        if not valid[i]:
            mask.append(False)
            continue
        dominated = any(valid[j] and c2 <= c and g2 >= g and (c2 < c or g2 > g)
                        for j, (c2, g2) in enumerate(pts) if j != i)
        mask.append(not dominated)
    return mask
