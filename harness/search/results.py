"""What a search found, as plain data: its front against the hand-written variants on the same
axes and reference point, the hypervolume after each trial, each front point's configuration
in words, and the found variant (if any) that dominates or ties every hand-written one.

Pure: takes the study's trials (``study.trials_data``) and hand-written points, so the
report and the benchmark use it without optuna or a device.
"""
from __future__ import annotations

from typing import Optional, Sequence

from . import front
from .objectives import METRICS, from_measurement
from .space import describe


def handwritten_points(measurements, objectives: Sequence[str], budgets: Sequence = (),
                       reference_accuracy: Optional[float] = None) -> list:
    """{name, values, feasible, reasons} of the manifest's own variants (measurements that are
    no search trial) with a value for every objective; the latest measurement of each variant
    counts. ``feasible``: it meets the search's budgets too (only those are compared)."""
    latest = {}
    for m in measurements:
        if "search" in (m.settings or {}):
            continue
        values = {name: from_measurement(name, m) for name in objectives}
        if all(v is not None for v in values.values()):
            missed = []
            for b in budgets:
                value = from_measurement(b.metric, m)
                if value is None or (b.drop and reference_accuracy is None) or \
                        b.violation(value, reference_accuracy) > 0:
                    missed.append(b.text)
            latest[m.variant] = {"name": m.variant, "technique": m.technique, "values": values,
                                 "measurement_id": m.id, "feasible": not missed, "reasons": missed}
    return list(latest.values())


def summarize_search(trials: list, handwritten: list, objectives: Sequence[str], margin: float = 0.1) -> dict:
    """The search's figures as data. ``trials``: dicts with number, state, technique, config,
    values ({objective: canonical value}); ``handwritten``: dicts with name and values (and
    ``feasible``: a hand-written variant that misses the search's budgets is shown but not
    compared, since no trial outside them counts either)."""
    directions = [METRICS[o].direction for o in objectives]
    trials = sorted(trials, key=lambda t: t["number"])

    def point(values: Optional[dict]):
        return None if not values else front.to_minimize([values[o] for o in objectives], directions)

    feasible = [point(t["values"]) if t["state"] == "feasible" else None for t in trials]
    hand = [point(h["values"]) if h.get("feasible", True) else None for h in handwritten]
    everything = [p for p in feasible + hand if p is not None]
    reference = front.reference_point(everything, margin=margin) if everything else None
    if reference is not None:
        # each axis scaled to [0, 1] between the best value seen and the reference point, so the
        # hypervolume is the dominated fraction of one box, whatever the units
        ideal = [min(axis) for axis in zip(*everything)]
        scale = [r - i if r > i else 1.0 for r, i in zip(reference, ideal)]

        def unit_box(p):
            return None if p is None else tuple((v - i) / s for v, i, s in zip(p, ideal, scale))
        feasible, hand = [unit_box(p) for p in feasible], [unit_box(p) for p in hand]
        unit_reference = (1.0,) * len(reference)
    found_idx = front.front_indices(feasible)
    hand_idx = front.front_indices(hand)
    result = {
        "objectives": list(objectives), "directions": directions,
        "labels": [METRICS[o].label for o in objectives],
        "reference": None if reference is None else dict(zip(objectives, front.from_minimize(reference, directions))),
        "trials": [{**t, "on_front": i in found_idx, "description": describe(t.get("technique") or "?",
                                                                              t.get("config") or {})}
                   for i, t in enumerate(trials)],
        "handwritten": [{**h, "on_front": i in hand_idx} for i, h in enumerate(handwritten)],
        "hypervolume_history": [], "hypervolume_found": 0.0, "hypervolume_handwritten": 0.0,
        "dominating": [],
    }
    if reference is None:
        return result
    result["hypervolume_history"] = [{"trial": t["number"], "hypervolume": hv}
                                     for t, hv in zip(trials, front.hypervolume_history(feasible, unit_reference))]
    result["hypervolume_found"] = front.hypervolume([feasible[i] for i in found_idx], unit_reference)
    result["hypervolume_handwritten"] = front.hypervolume([hand[i] for i in hand_idx], unit_reference)
    if any(q is not None for q in hand):
        compared = [q for q in hand if q is not None]
        result["dominating"] = [trials[i]["number"] for i in found_idx if compared
                                and all(front.dominates_or_ties(feasible[i], q) for q in compared)]
    return result
