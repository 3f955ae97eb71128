"""Pareto fronts and hypervolume: pure, on plain tuples, every objective minimised.

A maximised objective (accuracy) is negated by ``to_minimize`` first, so one reference
point and one dominance rule serve all. The hypervolume is exact (slicing over the last
objective), which is plenty for the tens to hundreds of points a device search produces.
"""
from __future__ import annotations

from typing import Optional, Sequence


def to_minimize(values: Sequence[float], directions: Sequence[str]) -> tuple:
    return tuple(-v if d == "maximize" else v for v, d in zip(values, directions))


def from_minimize(values: Sequence[float], directions: Sequence[str]) -> tuple:
    return to_minimize(values, directions)


def dominates(p: Sequence[float], q: Sequence[float]) -> bool:
    return all(a <= b for a, b in zip(p, q)) and any(a < b for a, b in zip(p, q))


def dominates_or_ties(p: Sequence[float], q: Sequence[float]) -> bool:
    return all(a <= b for a, b in zip(p, q))


def front_indices(points: Sequence[Optional[Sequence[float]]]) -> list:
    """Indices of the points no other point dominates (None entries are skipped; equal points
    are all kept)."""
    valid = [(i, p) for i, p in enumerate(points) if p is not None]
    return [i for i, p in valid if not any(dominates(q, p) for j, q in valid if j != i)]


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume dominated by ``points`` and bounded by ``reference`` (minimisation)."""
    ref = tuple(float(r) for r in reference)
    inside = [tuple(float(v) for v in p) for p in points if all(v < r for v, r in zip(p, ref))]
    if not inside:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in inside)
    inside.sort(key=lambda p: p[-1])
    total = 0.0
    for i, p in enumerate(inside):
        upper = inside[i + 1][-1] if i + 1 < len(inside) else ref[-1]
        if upper > p[-1]:
            total += (upper - p[-1]) * hypervolume([q[:-1] for q in inside[:i + 1]], ref[:-1])
    return total


def reference_point(*point_sets: Sequence[Sequence[float]], margin: float = 0.1) -> tuple:
    """A reference point just beyond the worst value of every axis over all the sets, so the
    found front and the hand-written variants are measured against the same box."""
    points = [p for s in point_sets for p in s if p is not None]
    if not points:
        raise ValueError("no points to place a reference point after")
    ref = []
    for axis in zip(*points):
        low, high = min(axis), max(axis)
        span = high - low if high > low else (abs(high) or 1.0)
        ref.append(high + margin * span)
    return tuple(ref)


def hypervolume_history(points: Sequence[Optional[Sequence[float]]], reference: Sequence[float]) -> list:
    """The hypervolume of the front found after each point in order (None: no feasible value,
    the front is unchanged)."""
    seen, history, value = [], [], 0.0
    for p in points:
        if p is not None:
            seen.append(p)
            value = hypervolume([seen[i] for i in front_indices(seen)], reference)
        history.append(value)
    return history
