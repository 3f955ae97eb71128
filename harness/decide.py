"""Decisions between variants measured on one device: faster, tied, dominated.

Ties are ties. Two variants differ in latency only when the ratio of their latencies,
paired by round (both were measured in the same rounds of one campaign, in a shuffled
order, so drift between rounds falls on both alike), has a confidence interval that
excludes 1 AND a size beyond the device's noise floor. The noise floor is the device
YAML's `validity.min_effect`, raised to the false difference its A/A control pair showed
in the same run (a manifest's `control: true` measures the base model twice per round).
Byte-identical models with identical settings are never different.

Pareto fronts follow the same rules: a variant leaves the front only when another one is
decided better in one objective and no worse (better or tied) in every other.
Pure: Measurements in, decisions out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .stats import log_interval, t_quantile

CONFIDENCE = 0.95
CONTROL_VARIANT = "control"   # the A/A twin of a manifest's base model (variant_build.control_recipe)


@dataclass(frozen=True)
class Ratio:
    """other / base of a latency statistic, with its interval (None: not estimable)."""
    estimate: float
    low: Optional[float]
    high: Optional[float]
    paired: bool
    rounds: int
    identical: bool = False

    def excludes_one(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 1.0 or self.high < 1.0)

    def text(self) -> str:
        if self.low is None:
            return f"{self.estimate:.3f}x (no interval: {self.rounds} round(s))"
        return f"{self.estimate:.3f}x [{self.low:.3f}..{self.high:.3f}]"


def same_artifact(a, b) -> bool:
    """Same model bytes and the same settings: the same experiment, whatever its name."""
    return a.model_sha256 == b.model_sha256 and _comparable(a.settings) == _comparable(b.settings)


def _comparable(settings: dict) -> dict:
    return {k: v for k, v in (settings or {}).items() if k not in ("round",)}


def _paired(a, b) -> bool:
    """Measured in the same rounds of one campaign (so round i of each shares a machine state)."""
    ca = (a.provenance or {}).get("campaign") or {}
    cb = (b.provenance or {}).get("campaign") or {}
    return (a.run_id == b.run_id and a.device == b.device and ca.get("id") is not None
            and ca.get("id") == cb.get("id") and a.latency.rounds == b.latency.rounds)


def latency_ratio(base, other, statistic: str = "p50", confidence: float = CONFIDENCE) -> Ratio:
    """other / base, paired by round when both come from one campaign, else unpaired
    (Welch's interval on the rounds' log values)."""
    rb = np.asarray(base.latency.round_values(statistic), dtype=float)
    ro = np.asarray(other.latency.round_values(statistic), dtype=float)
    pooled_b = getattr(base.latency, f"{statistic}_ms")
    pooled_o = getattr(other.latency, f"{statistic}_ms")
    estimate = pooled_o / pooled_b if pooled_b > 0 else math.inf
    identical = same_artifact(base, other)
    if _paired(base, other) and rb.size >= 2 and np.all(rb > 0) and np.all(ro > 0):
        interval = log_interval(ro / rb, confidence)
        if interval is not None:
            centre, low, high = interval
            return Ratio(centre, low, high, True, int(rb.size), identical)
    if rb.size >= 2 and ro.size >= 2 and np.all(rb > 0) and np.all(ro > 0):
        lb, lo = np.log(rb), np.log(ro)
        vb, vo = lb.var(ddof=1) / lb.size, lo.var(ddof=1) / lo.size
        diff = lo.mean() - lb.mean()
        se = math.sqrt(vb + vo)
        if se == 0:
            return Ratio(math.exp(diff), math.exp(diff), math.exp(diff), False, int(min(rb.size, ro.size)), identical)
        # Welch-Satterthwaite degrees of freedom
        df = (vb + vo) ** 2 / ((vb ** 2) / (lb.size - 1) + (vo ** 2) / (lo.size - 1)) if (vb or vo) else 1
        half = t_quantile(confidence, max(1, int(df))) * se
        return Ratio(math.exp(diff), math.exp(diff - half), math.exp(diff + half), False,
                     int(min(rb.size, ro.size)), identical)
    return Ratio(estimate, None, None, False, int(min(rb.size, ro.size)), identical)


def noise_floor(measurements: Sequence, min_effect: float = 0.02) -> dict:
    """{device: floor} as a relative difference: the YAML's minimum effect, or the largest
    false difference an A/A control pair showed on that device, whichever is larger."""
    floors: dict = {}
    by_key = {(m.device, m.model, m.variant): m for m in measurements}
    for m in measurements:
        floors.setdefault(m.device, _min_effect(m, min_effect))
        if m.variant != CONTROL_VARIANT:
            continue
        twin = control_twin(m, by_key.values())
        if twin is None:
            continue
        aa = abs(math.log(latency_ratio(twin, m).estimate))
        floors[m.device] = max(floors[m.device], math.exp(aa) - 1.0)
    return floors


def _min_effect(m, default: float) -> float:
    return float(((m.validity or {}).get("thresholds") or {}).get("min_effect", default))


def control_twin(control, measurements):
    """The measured variant of the control's model on its device holding the same bytes."""
    for m in measurements:
        if (m is not control and m.device == control.device and m.model == control.model
                and m.model_sha256 == control.model_sha256 and m.variant != CONTROL_VARIANT):
            return m
    return None


def latency_relation(base, other, floor: float, statistic: str = "p50") -> tuple[str, Ratio]:
    """'faster' / 'slower' (other against base) or 'tied', with the ratio it rests on."""
    ratio = latency_ratio(base, other, statistic)
    if ratio.identical or not ratio.excludes_one():
        return "tied", ratio
    if abs(math.log(ratio.estimate)) <= math.log1p(floor):
        return "tied", ratio
    return ("faster" if ratio.estimate < 1 else "slower"), ratio


def speed_text(relation: str, ratio: Ratio) -> str:
    """'2.31x faster' / '1.40x slower' / 'tied': a factor above 1 either way."""
    if relation == "faster":
        return f"{1 / ratio.estimate:.2f}x faster"
    if relation == "slower":
        return f"{ratio.estimate:.2f}x slower"
    return "tied"


def accuracy_relation(a, b) -> str:
    """'better' / 'worse' (b against a) / 'tied'.

    Top-1 on one evaluation set is not a noisy measurement: run it again and the same
    predictions come back. What does move it is arithmetic: another kernel's rounding (LiteRT's
    XNNPACK against its built-in kernels) flips a borderline sample. So a difference of one
    sample of the set is a tie; more is a difference on this set (whether it generalises is
    the dataset's question, stated with the set's size in the report)."""
    if a.accuracy is None or b.accuracy is None:
        return "unknown"
    n = min(x for x in (a.accuracy_n, b.accuracy_n, 10 ** 9) if x)
    if abs(b.accuracy - a.accuracy) <= 1.0 / n + 1e-12:
        return "tied"
    return "better" if b.accuracy > a.accuracy else "worse"


def _no_worse_and_better(a, b, floor: float, cost: str) -> bool:
    """a dominates b: no worse in every objective, decided better in one."""
    if cost == "latency":
        rel, _ = latency_relation(b, a, floor)          # a against b
        cost_better, cost_worse = rel == "faster", rel == "slower"
    else:
        ca, cb = getattr(a, cost), getattr(b, cost)
        if ca is None or cb is None:
            return False
        cost_better, cost_worse = ca < cb, ca > cb
    acc = accuracy_relation(b, a)                        # a against b
    if acc == "unknown":
        if a.accuracy is not None or b.accuracy is not None:
            return False   # one measured, one not: not comparable
        acc = "tied"       # neither measured (no dataset): the front is over the cost alone
    if cost_worse or acc == "worse":
        return False
    return cost_better or acc == "better"


def pareto_front(measurements: Sequence, cost: str = "latency", floor: float = 0.02) -> list[bool]:
    """For each measurement: on the front (no other one dominates it under the tie rules).
    Without accuracy on every point (no dataset) the front is over the cost alone. `cost`:
    'latency' or a numeric attribute of the Measurement ('storage_bytes', 'size_bytes')."""
    return [not any(j != i and _no_worse_and_better(other, m, floor, cost) for j, other in enumerate(measurements))
            for i, m in enumerate(measurements)]
