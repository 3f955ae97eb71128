"""What to deploy where, and why: one recommendation per device and model.

Among a model's variants on one device, the candidates are the valid measurements (not the
A/A control) that keep the manifest's accuracy budget against fp32 and failed none of their
tests; the recommendation is the fastest candidate under the tie rules of harness.decide
(variants tied with it are named, and the smaller stored one wins a tie), with its speed-up
over fp32 and its interval, the accuracy change, stored and file size, energy and verdict.
Pure: Measurements and test outcomes in, plain rows out (for the report and the terminal).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import decide


@dataclass
class Recommendation:
    device: str
    model: str
    variant: Optional[str]              # None: no candidate
    reason: str                         # one line a person can paste into a design review
    speedup: Optional[float] = None     # fp32 p50 / chosen p50
    speedup_interval: Optional[tuple] = None
    relation: str = ""                  # faster / tied / slower against fp32
    accuracy_change_pt: Optional[float] = None
    stored_bytes: Optional[int] = None
    file_bytes: Optional[int] = None
    energy_j: Optional[float] = None
    verdict: str = ""
    tied_with: list = field(default_factory=list)
    excluded: dict = field(default_factory=dict)   # variant -> why it is no candidate
    best: dict = field(default_factory=dict)       # objective -> variant
    emulated: bool = False
    accuracy_budget_pt: Optional[float] = None     # the manifest's max_accuracy_drop, in points
    tests_passed: list = field(default_factory=list)   # the chosen variant's tests
    tests_failed: list = field(default_factory=list)
    tests: dict = field(default_factory=dict)      # test name -> {"passed": [variants], "failed": [variants]}


def _budget_drop(manifests: dict, model: str) -> Optional[float]:
    manifest = manifests.get(model)
    return manifest.max_accuracy_drop if manifest is not None else None   # a model without a manifest: no budget


def recommend(measurements, outcomes: Optional[dict] = None, manifests: Optional[dict] = None) -> list:
    """outcomes: {(device, variant_id): {"passed": [...], "failed": [...]}} from the tests;
    manifests: {model name: Manifest} for the accuracy budgets."""
    outcomes, manifests = outcomes or {}, manifests or {}
    measurements = list(measurements)
    floors = decide.noise_floor(measurements)
    groups = _variants_by_device_and_model(measurements)
    return [_recommend_one(device, model, list(by_variant.values()), floors.get(device, 0.02),
                           outcomes, manifests)
            for (device, model), by_variant in sorted(groups.items())]


def _variants_by_device_and_model(measurements: list) -> dict:
    """{(device, model): {variant: measurement}}, without the A/A control."""
    groups: dict = {}
    for m in measurements:
        if m.variant != decide.CONTROL_VARIANT:
            groups.setdefault((m.device, m.model), {})[m.variant] = m   # a re-measure replaces
    return groups


def _recommend_one(device: str, model: str, group: list, floor: float, outcomes: dict,
                   manifests: dict) -> Recommendation:
    reference = next((m for m in group if m.technique == "fp32"), None)
    drop_budget = _budget_drop(manifests, model)
    excluded = _exclusions(device, group, reference, drop_budget, outcomes)
    candidates = [m for m in group if m.variant not in excluded]
    rec = Recommendation(device, model, None, "", excluded=excluded, best=_best(group, floor),
                         emulated=any(m.emulated for m in group),
                         accuracy_budget_pt=None if drop_budget is None else 100 * drop_budget,
                         tests=_tests(device, group, outcomes))
    if not candidates:
        rec.reason = _no_candidate_reason(device, model, excluded)
        return rec
    chosen = _fastest(candidates, floor)
    _record_choice(rec, chosen, candidates, floor)
    record = outcomes.get((device, chosen.variant_id), {})
    passed = record.get("passed", [])
    rec.tests_passed = sorted(set(passed))
    rec.tests_failed = sorted(set(record.get("failed", [])))
    parts = [f"{device}{' (emulated)' if chosen.emulated else ''}: deploy {model}/{chosen.variant}"]
    parts += _against_reference(rec, reference, chosen, floor)
    parts.append(_size_part(chosen, reference))
    if rec.energy_j is not None:
        parts.append(f"{1e3 * rec.energy_j:.3f} mJ/inference")
    if passed:
        parts.append(f"passed {len(passed)} test(s)")
    parts.append(chosen.verdict)
    if rec.tied_with:
        parts.append("tied in latency with " + ", ".join(rec.tied_with))
    rec.reason = "; ".join(parts)
    return rec


def _exclusions(device: str, group: list, reference, drop_budget: Optional[float], outcomes: dict) -> dict:
    """variant -> why it is no candidate: invalid, failed a test, or over the accuracy budget."""
    excluded = {}
    for m in group:
        failed = outcomes.get((device, m.variant_id), {}).get("failed", [])
        if not m.valid:
            excluded[m.variant] = "invalid: " + "; ".join(m.validity.get("reasons", []))
        elif failed:
            excluded[m.variant] = "failed " + ", ".join(failed)
        elif (drop_budget is not None and reference is not None and reference.accuracy is not None
              and m.accuracy is not None and reference.accuracy - m.accuracy > drop_budget):
            excluded[m.variant] = (f"loses {100 * (reference.accuracy - m.accuracy):.1f} pt of top-1 "
                                   f"(budget {100 * drop_budget:.1f})")
    return excluded


def _no_candidate_reason(device: str, model: str, excluded: dict) -> str:
    kinds: dict = {}
    for why in excluded.values():
        kind = why.split(":")[0].split(" ")[0]   # invalid / failed / loses
        kinds[kind] = kinds.get(kind, 0) + 1
    words = {"invalid": "invalid", "failed": "failed a test", "loses": "over the accuracy budget"}
    return (f"{device}: no variant of {model} to recommend: "
            + ", ".join(f"{n} {words.get(k, k)}" for k, n in sorted(kinds.items()))
            + " (the reasons are listed with each measurement)")


def _record_choice(rec: Recommendation, chosen, candidates: list, floor: float) -> None:
    """The chosen variant, the candidates tied with it, and its sizes, energy and verdict."""
    rec.variant = chosen.variant
    rec.tied_with = sorted(m.variant for m in candidates if m is not chosen
                           and decide.latency_relation(chosen, m, floor)[0] == "tied")
    rec.stored_bytes, rec.file_bytes = chosen.storage_bytes, chosen.size_bytes
    rec.energy_j = (chosen.energy or {}).get("energy_per_inference_j")
    rec.verdict = chosen.verdict


def _against_reference(rec: Recommendation, reference, chosen, floor: float) -> list:
    """Speed-up and accuracy change against fp32 (recorded on rec), as parts of the reason."""
    if reference is None:
        return []
    if reference is chosen:
        return ["fp32 itself: no compressed variant is decidedly faster"]
    parts = []
    relation, ratio = decide.latency_relation(reference, chosen, floor)
    rec.relation = relation
    rec.speedup = 1 / ratio.estimate
    if ratio.low is not None:
        rec.speedup_interval = (1 / ratio.high, 1 / ratio.low)
    interval = (f" [{rec.speedup_interval[0]:.2f}-{rec.speedup_interval[1]:.2f}]"
                if rec.speedup_interval else "")
    parts.append(f"{rec.speedup:.2f}x the speed of fp32{interval}"
                 + (" (tied: within the noise)" if relation == "tied" else ""))
    if chosen.accuracy is not None and reference.accuracy is not None:
        rec.accuracy_change_pt = 100 * (chosen.accuracy - reference.accuracy)
        acc_rel = decide.accuracy_relation(reference, chosen)
        parts.append(f"top-1 {rec.accuracy_change_pt:+.1f} pt"
                     + (" (tied)" if acc_rel == "tied" else ""))
    return parts


def _size_part(chosen, reference) -> str:
    return (f"stored {chosen.storage_bytes / 1024:.1f} KB"
            + (f", deployed {chosen.size_bytes / 1024:.1f} KB" if chosen.size_bytes != chosen.storage_bytes
               else "")
            + (f" (fp32 {reference.storage_bytes / 1024:.1f} KB)" if reference is not None else ""))


def _tests(device: str, group: list, outcomes: dict) -> dict:
    """Each test's outcome over the model's variants on the device, from the stored outcomes."""
    tests: dict = {}
    for m in sorted(group, key=lambda m: m.variant):
        record = outcomes.get((device, m.variant_id), {})
        for outcome in ("passed", "failed"):
            for test in record.get(outcome, []):
                entry = tests.setdefault(test, {"passed": [], "failed": []})
                if m.variant not in entry[outcome]:
                    entry[outcome].append(m.variant)
    return dict(sorted(tests.items()))


def _fastest(candidates: list, floor: float):
    """The candidate no other is decidedly faster than; among those, the smallest stored."""
    unbeaten = [m for m in candidates
                if not any(decide.latency_relation(m, o, floor)[0] == "faster" for o in candidates if o is not m)]
    pool = unbeaten or candidates
    return min(pool, key=lambda m: (m.storage_bytes, m.latency.p50_ms))


def _best(group: list, floor: float) -> dict:
    valid = [m for m in group if m.valid] or group
    best = {"fastest": _fastest(valid, floor).variant,
            "smallest stored": min(valid, key=lambda m: m.storage_bytes).variant}
    with_acc = [m for m in valid if m.accuracy is not None]
    if with_acc:
        best["most accurate"] = max(with_acc, key=lambda m: (m.accuracy, -m.storage_bytes)).variant
    with_energy = [m for m in valid if (m.energy or {}).get("energy_per_inference_j") is not None]
    if with_energy:
        best["least energy"] = min(with_energy, key=lambda m: m.energy["energy_per_inference_j"]).variant
    return best
