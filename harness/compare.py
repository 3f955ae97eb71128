"""Regression gates: compare two runs' measurements with a statistical test and an effect size.

A gate expression names a metric and the largest tolerated worsening, in the style of
pytest-benchmark's ``--benchmark-compare-fail`` but beyond time:

    p50:5%  p90:5%  p95:5%  p99:5%  mean:5%   latency statistics of the per-inference samples
    energy:10%                                energy per inference
    memory:5%                                 peak resident set size (or MCU RAM)
    accuracy:0.5pt                            top-1 accuracy drop in percentage points

A change is a regression only when it is statistically significant (the two runs really
differ, so a noisy wobble does not fail the night), larger than the threshold (so a real
but tiny change does not either) AND, once the store holds enough history for the key,
larger than the run-to-run noise that key has shown night after night (so a changed
background load on the lab machine does not either):

- latency: one-sided Welch t test on the log of the rounds' statistic (each run measured
  in rounds: the test sees between-round variance, never samples of one window as
  independent draws); for runs stored without rounds, the within-window tests of the
  first release, labelled as such: Mann-Whitney U (p50) or a bootstrap of the ratio;
- history: the change in log space must exceed HISTORY_Z times the robust scale of the
  key's night-to-night log differences over its last HISTORY_RUNS runs (at least
  HISTORY_MIN runs; fewer gives the note "insufficient history");
- accuracy: a one-sided two-proportion z-test on the top-1 counts;
- energy: one value per run with the meter's relative uncertainty: the change must exceed
  both uncertainties added (without them, the threshold alone decides);
- memory: one value per run, so the threshold alone decides (said in the verdict).

The effect is the ratio new/base of the statistic, with a bootstrap confidence interval.
Pure: plain data in, verdicts out; no pytest, no store.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from . import metrics
from .errors import HarnessError

# from the one metrics table (harness/metrics.py)
LATENCY_METRICS = {m.name: m.percentile for m in metrics.METRICS if m.latency}
ROUND_STATISTIC = {m.name: m.rounds for m in metrics.METRICS if m.rounds}
ALLOWED = metrics.allowed_text()

ALPHA = 0.01             # significance level of every test (one-sided)
HISTORY_MIN = 3          # earlier runs of a key before its run-to-run noise is trusted
HISTORY_RUNS = 20        # the newest runs that estimate it
HISTORY_Z = 3.0          # a regression is beyond this many robust scales of that noise
MAX_SAMPLES = 4000       # per run: evenly spaced order statistics keep tests fast and honest
BOOTSTRAP_RESAMPLES = 400
CONFIDENCE = 0.95

_EXPR = re.compile(r"^\s*([a-z0-9]+)\s*:\s*([0-9]*\.?[0-9]+)\s*(%|pt)\s*$")


class GateError(HarnessError):
    pass


@dataclass(frozen=True)
class Gate:
    metric: str
    threshold: float  # a fraction (0.05 for 5%) or accuracy points (0.5 for 0.5pt)
    unit: str         # "%" or "pt"
    text: str

    def __str__(self) -> str:
        return self.text


def parse_gate(text: str) -> Gate:
    """`p99:5%` -> Gate; an error names the expression and what is allowed."""
    match = _EXPR.match(str(text).lower())
    if not match:
        raise GateError(f"--compare-fail {text!r}: expected METRIC:THRESHOLD such as p50:5% or "
                        f"accuracy:0.5pt; metrics: {ALLOWED}")
    metric, value, unit = match.group(1), float(match.group(2)), match.group(3)
    row = metrics.get(metric)
    if row is None:
        raise GateError(f"--compare-fail {text!r}: unknown metric {metric!r}; metrics: {ALLOWED}")
    if unit != row.gate_unit:
        words = "percentage points, e.g. accuracy:0.5pt" if row.gate_unit == "pt" else f"a percentage, e.g. {metric}:5%"
        raise GateError(f"--compare-fail {text!r}: {metric} takes {words}")
    if value <= 0:
        raise GateError(f"--compare-fail {text!r}: the threshold must be > 0")
    return Gate(metric, value / 100.0 if unit == "%" else value, unit, f"{metric}:{match.group(2)}{unit}")


def parse_gates(texts: Iterable[str]) -> list[Gate]:
    gates = []
    for text in texts or ():
        for part in str(text).split(","):  # "p50:5%,p99:10%" is accepted as well
            if part.strip():
                gates.append(parse_gate(part))
    return gates


@dataclass
class Verdict:
    """One gate applied to one (device, variant) pair of measurements."""

    key: tuple           # (device, model, variant)
    gate: Gate
    base: Optional[float]
    new: Optional[float]
    change: Optional[float]               # relative (ratio - 1) or accuracy points lost
    ci: Optional[tuple] = None            # CI of the change, same unit
    p_value: Optional[float] = None
    significant: Optional[bool] = None    # None: no test possible (one value per run)
    regression: bool = False
    note: str = ""
    test: str = ""                        # which test decided significance
    history_runs: int = 0                 # earlier runs of the key the noise came from
    history_limit: Optional[float] = None  # the relative change the history says is noise

    @property
    def name(self) -> str:
        return f"{self.key[0]} {self.key[1]}/{self.key[2]}"

    def explain(self) -> str:
        if self.base is None or self.new is None:
            return f"{self.name} {self.gate}: not compared ({self.note})"
        if self.gate.unit == "pt":
            change = f"-{self.change:.2f}pt"
            ci = f" [CI {self.ci[0]:.2f}..{self.ci[1]:.2f}pt]" if self.ci else ""
            values = f"{100 * self.base:.2f}% -> {100 * self.new:.2f}%"
        else:
            change = f"{100 * self.change:+.1f}%"
            ci = f" [CI {100 * self.ci[0]:+.1f}..{100 * self.ci[1]:+.1f}%]" if self.ci else ""
            unit = {"memory": " kB", "energy": " J"}.get(self.gate.metric, " ms")
            values = f"{self.base:.6g}{unit} -> {self.new:.6g}{unit}"
        if self.significant is None:
            test = "no test: one value per run"
        elif self.p_value is None:
            test = "beyond the meters' uncertainty" if self.significant else "within the meters' uncertainty"
        else:
            test = f"p={self.p_value:.2g}{'' if self.significant else ' (not significant)'}"
        if self.test:
            test += f", {self.test}"
        if self.history_limit is not None:
            test += f"; night-to-night noise {100 * self.history_limit:.1f}% over {self.history_runs} runs"
        status = "REGRESSION" if self.regression else "ok"
        return f"{status}: {self.name} {self.gate.metric} {values} ({change}{ci}, {test}; limit {self.gate})" \
               + (f"; {self.note}" if self.note else "")

    def to_dict(self) -> dict:
        return {"device": self.key[0], "model": self.key[1], "variant": self.key[2],
                "gate": str(self.gate), "metric": self.gate.metric, "base": self.base, "new": self.new,
                "change": self.change, "ci": list(self.ci) if self.ci else None, "p_value": self.p_value,
                "significant": self.significant, "regression": self.regression, "note": self.note,
                "test": self.test, "history_runs": self.history_runs, "history_limit": self.history_limit,
                "text": self.explain()}


# ------------------------------------------------------------------ statistics


def subsample(samples, limit: int = MAX_SAMPLES) -> np.ndarray:
    """Evenly spaced order statistics: keeps the distribution's shape, bounds the cost."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    if x.size > limit:
        x = x[np.linspace(0, x.size - 1, limit).round().astype(int)]
    return x


def mann_whitney_greater(new: np.ndarray, base: np.ndarray) -> float:
    """One-sided p-value that `new` tends to be larger than `base` (normal approximation
    with tie correction; the runs hold hundreds to thousands of samples)."""
    n1, n2 = new.size, base.size
    if n1 == 0 or n2 == 0:
        return 1.0
    both = np.concatenate([new, base])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(both.size)
    sorted_vals = both[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    tie = (counts ** 3 - counts).sum() / (n * (n - 1)) if n > 1 else 0.0
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie))
    if sigma == 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / sigma  # continuity correction
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _statistic(metric: str):
    q = LATENCY_METRICS[metric]
    if q is None:
        return lambda a, axis=-1: np.mean(a, axis=axis)
    return lambda a, axis=-1: np.percentile(a, q, axis=axis)


def bootstrap_ratio(new: np.ndarray, base: np.ndarray, metric: str, seed: int = 0,
                    resamples: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """Bootstrap distribution of statistic(new)/statistic(base), both resampled independently."""
    rng = np.random.default_rng(seed)
    stat = _statistic(metric)
    ratios = np.empty(resamples)
    chunk = max(1, int(4e6 // max(new.size, base.size)))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        a = stat(new[rng.integers(0, new.size, size=(k, new.size))], axis=1)
        b = stat(base[rng.integers(0, base.size, size=(k, base.size))], axis=1)
        ratios[start:start + k] = a / np.where(b > 0, b, np.nan)
    return ratios[np.isfinite(ratios)]


def compare_samples(base_ns, new_ns, gate: Gate, key: tuple = ("", "", ""), seed: int = 0) -> Verdict:
    """A latency gate on two runs' per-inference samples."""
    base, new = subsample(base_ns), subsample(new_ns)
    if base.size < 2 or new.size < 2:
        return Verdict(key, gate, None, None, None, note="fewer than 2 samples")
    stat = _statistic(gate.metric)
    b, n = float(stat(base)), float(stat(new))
    if b <= 0:
        return Verdict(key, gate, b, n, None, note="baseline statistic is zero")
    ratios = bootstrap_ratio(new, base, gate.metric, seed=seed)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha]) if ratios.size else (np.nan, np.nan)
    if gate.metric == "p50":
        p = mann_whitney_greater(new, base)
    else:
        # one-sided bootstrap test: how often the resampled ratio is not above 1
        p = float((np.sum(ratios <= 1.0) + 1) / (ratios.size + 1))
    change = n / b - 1.0
    significant = p < ALPHA
    return Verdict(key, gate, b / 1e6, n / 1e6, change, (float(low) - 1, float(high) - 1), p,
                   significant, regression=bool(significant and change > gate.threshold))


def compare_rounds(base_rounds, new_rounds, gate: Gate, key: tuple = ("", "", "")) -> Verdict:
    """A latency gate on two runs' per-round values (ms): Welch's one-sided t test on logs."""
    from scipy.stats import ttest_ind

    b = np.log(np.asarray(base_rounds, dtype=float))
    n = np.log(np.asarray(new_rounds, dtype=float))
    diff = float(n.mean() - b.mean())
    change = math.expm1(diff)
    if np.ptp(b) == 0 and np.ptp(n) == 0:
        p = 0.0 if diff > 0 else 1.0   # deterministic (an instruction-counted emulator)
        low = high = change
    else:
        p = float(ttest_ind(n, b, equal_var=False, alternative="greater").pvalue)
        vb, vn = b.var(ddof=1) / b.size, n.var(ddof=1) / n.size
        dof = (vb + vn) ** 2 / (vb ** 2 / (b.size - 1) + vn ** 2 / (n.size - 1)) if (vb + vn) > 0 else 1.0
        from .stats import t_quantile

        half = t_quantile(CONFIDENCE, max(1, int(dof))) * math.sqrt(vb + vn)
        low, high = math.expm1(diff - half), math.expm1(diff + half)
    significant = p < ALPHA
    return Verdict(key, gate, float(np.exp(b.mean())), float(np.exp(n.mean())), change, (low, high), p,
                   significant, regression=bool(significant and change > gate.threshold),
                   test=f"Welch t over {b.size} vs {n.size} rounds")


def history_limit(values) -> Optional[float]:
    """The relative change a key's run-to-run noise explains: HISTORY_Z robust scales of its
    successive log differences (1.4826 x their median absolute value). None: too few runs."""
    v = [float(x) for x in values if x is not None and x > 0]
    if len(v) < HISTORY_MIN:
        return None
    d = np.abs(np.diff(np.log(v)))
    return math.expm1(HISTORY_Z * 1.4826 * float(np.median(d)))


def apply_history(verdict: Verdict, history) -> Verdict:
    """Hold a regression to the key's night-to-night noise (None: no history query made)."""
    if history is None or verdict.change is None:
        return verdict
    values = [x for x in history[-HISTORY_RUNS:] if x is not None and x > 0]
    verdict.history_runs = len(values)
    limit = history_limit(values)
    if limit is None:
        verdict.note = (verdict.note + "; " if verdict.note else "") + (
            f"insufficient history ({len(values)} earlier run(s), need {HISTORY_MIN}): within-run test only")
        return verdict
    verdict.history_limit = limit
    if verdict.regression and verdict.change <= limit:
        verdict.regression = False
        verdict.note = (verdict.note + "; " if verdict.note else "") + "within the night-to-night noise"
    return verdict


def compare_accuracy(base_acc, base_n, new_acc, new_n, gate: Gate, key: tuple = ("", "", "")) -> Verdict:
    """Accuracy drop in points; one-sided two-proportion z-test on the top-1 counts."""
    if base_acc is None or new_acc is None:
        return Verdict(key, gate, base_acc, new_acc, None, note="accuracy not measured in both runs")
    drop = 100.0 * (base_acc - new_acc)
    if not base_n or not new_n:
        return Verdict(key, gate, base_acc, new_acc, drop, significant=None,
                       regression=drop > gate.threshold, note="no sample counts")
    pooled = (base_acc * base_n + new_acc * new_n) / (base_n + new_n)
    se = math.sqrt(max(pooled * (1 - pooled) * (1 / base_n + 1 / new_n), 0.0))
    if se == 0:
        p = 0.0 if drop > 0 else 1.0
    else:
        p = 0.5 * math.erfc(((base_acc - new_acc) / se) / math.sqrt(2.0))
    se_diff = math.sqrt(base_acc * (1 - base_acc) / base_n + new_acc * (1 - new_acc) / new_n)
    ci = (drop - 196.0 * se_diff, drop + 196.0 * se_diff)
    significant = p < ALPHA
    return Verdict(key, gate, base_acc, new_acc, drop, ci, p, significant,
                   regression=bool(significant and drop > gate.threshold))


def compare_scalar(base, new, gate: Gate, key: tuple = ("", "", "")) -> Verdict:
    """One value per run (peak memory, energy per inference): the threshold alone decides."""
    if base is None or new is None:
        return Verdict(key, gate, base, new, None, note=f"{gate.metric} not measured in both runs")
    if base <= 0:
        return Verdict(key, gate, base, new, None, note="baseline value is zero")
    change = new / base - 1.0
    return Verdict(key, gate, float(base), float(new), change, significant=None,
                   regression=change > gate.threshold)


def compare_energy(base: Optional[dict], new: Optional[dict], gate: Gate, key: tuple = ("", "", "")) -> Verdict:
    """Energy per inference: one value per run, each with the meter's relative uncertainty
    (harness.power). Significant when the change exceeds both uncertainties added (a bound,
    not a p-value); without uncertainties the threshold alone decides."""
    b = (base or {}).get("energy_per_inference_j")
    n = (new or {}).get("energy_per_inference_j")
    verdict = compare_scalar(b, n, gate, key)
    rb, rn = (base or {}).get("uncertainty"), (new or {}).get("uncertainty")
    if verdict.change is None or rb is None or rn is None or not (math.isfinite(rb) and math.isfinite(rn)):
        return verdict
    bound = float(rb) + float(rn)
    verdict.ci = (verdict.change - bound, verdict.change + bound)
    verdict.significant = verdict.change > bound
    verdict.regression = bool(verdict.significant and verdict.change > gate.threshold)
    return verdict


# ------------------------------------------------------------------ runs


def measurement_key(m) -> tuple:
    return (m.device, m.model, m.variant)


def compare_measurement(base, new, gate: Gate, history=None) -> Verdict:
    """One gate on one key. `history`: the statistic's values in earlier runs (oldest
    first, the baseline among them), or None when the store was not asked."""
    key = measurement_key(new)
    if gate.metric in LATENCY_METRICS:
        stat = ROUND_STATISTIC.get(gate.metric)
        if stat and base.latency.rounds >= 2 and new.latency.rounds >= 2:
            verdict = compare_rounds(base.latency.round_values(stat), new.latency.round_values(stat), gate, key)
        else:
            verdict = compare_samples(base.samples_ns, new.samples_ns, gate, key)
            verdict.test = "within-window test (a run without rounds)"
        if not new.valid:
            verdict.note = (verdict.note + "; " if verdict.note else "") + "the new measurement is INVALID"
        return apply_history(verdict, history)
    if gate.metric == "accuracy":
        return compare_accuracy(base.accuracy, base.accuracy_n, new.accuracy, new.accuracy_n, gate, key)
    if gate.metric == "memory":
        memory = metrics.get("memory").of
        return compare_scalar(memory(base), memory(new), gate, key)
    return compare_energy(base.energy, new.energy, gate, key)


@dataclass
class Comparison:
    base_run: str
    new_run: str
    verdicts: list = field(default_factory=list)
    unmatched: list = field(default_factory=list)  # keys in the new run with no baseline

    @property
    def regressions(self) -> list:
        return [v for v in self.verdicts if v.regression]

    def lines(self) -> list[str]:
        out = [f"baseline {self.base_run} -> run {self.new_run}: {len(self.regressions)} regression(s) "
               f"in {len(self.verdicts)} check(s)"]
        out += [v.explain() for v in sorted(self.verdicts, key=lambda v: (not v.regression, v.key, v.gate.text))]
        out += [f"no baseline: {k[0]} {k[1]}/{k[2]}" for k in self.unmatched]
        return out

    def to_dict(self) -> dict:
        return {"base_run": self.base_run, "new_run": self.new_run,
                "regressions": len(self.regressions), "verdicts": [v.to_dict() for v in self.verdicts],
                "unmatched": [list(k) for k in self.unmatched]}


def compare_runs(base_measurements, new_measurements, gates: list[Gate],
                 base_run: str = "", new_run: str = "", history=None) -> Comparison:
    """Pair the runs' measurements by (device, model, variant) and apply every gate.
    `history(key, metric)`: the key's statistic in earlier runs, or None (no store)."""
    base = {measurement_key(m): m for m in base_measurements}  # the last one wins
    result = Comparison(base_run, new_run)
    for m in new_measurements:
        key = measurement_key(m)
        if key not in base:
            if key not in result.unmatched:
                result.unmatched.append(key)
            continue
        result.verdicts = [v for v in result.verdicts if v.key != key]  # a re-measure replaces
        result.verdicts += [compare_measurement(base[key], m, gate,
                                                history(key, gate.metric) if history else None)
                            for gate in gates]
    return result
