"""The search loop: an optuna study in the store's database, every trial a real measurement.

Per trial: the sampler proposes a technique and its parameters; the variant is built by
the ordinary generators through the content-addressed cache (a repeated configuration is
not rebuilt); a budget on a metric known before measuring (sizes, host accuracy) is checked
first and a trial that already misses it never reaches the device (kept as PRUNED, marked
``excluded``); otherwise the variant is measured through ``BenchSession.measure`` like any other
(stored at once, with the study and trial number in its settings), re-measured while the
session's validity verdict says "invalid" (never told to the sampler as a number), and its
objectives told to optuna with the budgets as constraints (infeasible trials kept, marked).

The study lives in optuna's RDB storage on the store's own URL, so several workers (boards,
xdist workers) share it and a killed search resumes: ``trials`` is the study's total, and a
trial left RUNNING by a dead process of this host is failed and its configuration queued
again.
"""
from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .. import variant_build
from ..errors import ConfigError, HarnessError
from . import objectives as obj
from .space import SearchSpec, describe

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_REMEASURE = 2
SEARCH_RUNTIMES = variant_build.RUNTIMES_BY_FORMAT["onnx"]    # technique variants are ONNX models


def _optuna():
    try:
        import optuna
    except ImportError:
        raise HarnessError('harness search needs optuna: pip install "edge-harness[search]" '
                           "(or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def default_study_name(manifest, device: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{manifest.name}-{device}")[:64]


def check_study_name(name: str) -> str:
    if not STUDY_NAME.match(name or ""):
        raise ConfigError("--study", "study", "1-64 letters, digits, '_', '.' or '-', starting with a letter "
                          "or digit", name)
    return name


def _set_constraints(trial, budgets, violations) -> None:
    """The budgets as optuna constraints (<= 0 met), which its samplers rank feasibility by."""
    for budget, violation in zip(budgets, violations):
        trial.set_constraint(budget.text, float(violation))


def make_sampler(spec: SearchSpec, seed_offset: int = 0):
    optuna = _optuna()
    seed = spec.seed + seed_offset
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, spec.population), multivariate=True,
                                          warn_independent_sampling=False)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=spec.population)


def open_storage(url: str, attempts: int = 5):
    """optuna's RDB storage on ``url`` (the measurement store's); several workers creating its
    tables at once on PostgreSQL may collide, so the creation is retried."""
    optuna = _optuna()
    from ..store import redact

    last = None
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as exc:          # a concurrent CREATE TABLE; anything else repeats below
            last = exc
            time.sleep(0.2 * (attempt + 1))
    raise HarnessError(f"search storage {redact(url)}: {str(last).splitlines()[0]}")


def worker_id() -> str:
    return f"{platform.node()}:{os.getpid()}"


@dataclass
class TrialOutcome:
    number: int
    state: str                        # complete | excluded | failed
    technique: str
    params: dict
    values: Optional[list] = None     # objectives in the study's order, canonical units
    feasible: Optional[bool] = None
    reasons: list = field(default_factory=list)
    measurement_id: Optional[int] = None
    build_s: float = 0.0
    measure_s: float = 0.0


def run_search(spec: SearchSpec, manifest: variant_build.Manifest, session, device: str, *, trials: int,
               storage_url: str, study_name: str, worker_trials: Optional[int] = None,
               remeasure: int = DEFAULT_REMEASURE, log: Callable[[str], None] = lambda line: None) -> list:
    """Run trials until the study holds ``trials`` finished ones (see ``_finished``) or this
    worker has run ``worker_trials``; returns this worker's TrialOutcomes."""
    optuna = _optuna()
    if trials < 1:
        raise ConfigError("--trials", "trials", "a positive number of trials", trials)
    check_study_name(study_name)
    probe = variant_build.VariantRecipe("search", "fp32", {}, None, SEARCH_RUNTIMES, spec.source)
    cannot = session.skip_reason(device, probe)
    if cannot:                # e.g. an MCU: searched variants are ONNX models
        raise HarnessError(f"search on {device}: {cannot}")
    storage = open_storage(storage_url)
    study = _load_study(optuna, storage, study_name, spec, manifest, device, seed_offset=0)
    _recover_dead_trials(optuna, study)
    reference = reference_accuracy(session, manifest) if any(b.drop for b in spec.budgets) else None
    outcomes = []
    while _finished(optuna, study) < trials and (worker_trials is None or len(outcomes) < worker_trials):
        # seeded by the study's size: one worker replays the same draws from the same seed;
        # a resumed worker, or a second one joining later, does not repeat the first's
        study.sampler = make_sampler(spec, seed_offset=len(study.get_trials(deepcopy=False)))
        outcome = _one_trial(optuna, study, spec, manifest, session, device, study_name, reference, remeasure)
        outcomes.append(outcome)
        log(format_outcome(outcome, spec))
    return outcomes


def _load_study(optuna, storage, name, spec, manifest, device, seed_offset):
    directions = spec.directions
    study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                sampler=make_sampler(spec, seed_offset), load_if_exists=True)
    kept = [d.name.lower() for d in study.directions]
    if kept != directions:
        raise ConfigError("--study", "study", f"a study of the same objectives ({name} optimises "
                          f"{', '.join(kept)})", ", ".join(directions))
    described = {"manifest": manifest.name, "device": device, "objectives": [o.name for o in spec.objectives],
                 "budgets": [b.text for b in spec.budgets]}
    if not study.user_attrs.get("search"):
        study.set_user_attr("search", described)
    elif study.user_attrs["search"]["objectives"] != described["objectives"]:
        raise ConfigError("--study", "study", f"the objectives of study {name} "
                          f"({study.user_attrs['search']['objectives']})", described["objectives"])
    return study


def _finished(optuna, study) -> int:
    """Trials that count towards the total: measured, excluded, or failed with a reason (a
    configuration the technique refused, every measurement invalid). A trial a killed worker
    left behind has no reason and does not count: its configuration is queued again."""
    states = optuna.trial.TrialState
    return sum(1 for t in study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED, states.FAIL))
               if t.state != states.FAIL or "failed" in t.user_attrs)


def _recover_dead_trials(optuna, study) -> None:
    """A trial RUNNING under a process of this host that no longer exists (kill -9) is failed
    and its configuration queued again, so the study loses nothing. Other hosts' trials are
    left to their own workers."""
    host = platform.node()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker", "")
        node, _, pid = owner.rpartition(":")
        if node != host or not pid.isdigit() or _alive(int(pid)):
            continue
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reference_accuracy(session, manifest) -> Optional[float]:
    """The base model's host accuracy: what an accuracy-drop budget drops from."""
    recipe = variant_build.VariantRecipe("fp32", "fp32", {}, None, ("onnxruntime",), f"{manifest.source}: search reference")
    return session.variant(manifest, recipe).host_accuracy


class _TrialFailed(Exception):
    """Ends a trial as failed (a configuration the technique refuses, no valid measurement,
    a metric missing): the message is the reason stored on the trial."""


def _one_trial(optuna, study, spec, manifest, session, device, study_name, reference, remeasure) -> TrialOutcome:
    trial = study.ask()
    trial.set_user_attr("worker", worker_id())
    technique, params = spec.sample(trial)
    trial.set_user_attr("technique", technique)
    trial.set_user_attr("config", params)
    outcome = TrialOutcome(trial.number, "failed", technique, params)
    recipe = _trial_recipe(spec, study_name, trial.number, technique, params)
    try:
        variant = _build_trial_variant(session, manifest, recipe, trial, outcome)
        early = _budgets_before_device(spec, variant, reference, trial)
        if any(v > 0 for _, v in early):
            return _exclude(optuna, study, trial, outcome, early)
        measurement, reasons = _measure_until_valid(session, device, manifest, recipe, study_name, trial,
                                                    outcome, remeasure)
        _record_measurement(trial, outcome, measurement)
        values = _objective_values(spec, measurement)
        constraints = _budget_violations(spec, measurement, reference)
    except _TrialFailed as exc:
        return _fail(optuna, study, trial, outcome, str(exc))
    _complete(study, trial, outcome, spec, values, constraints, reasons)
    return outcome


def _trial_recipe(spec, study_name: str, number: int, technique: str, params: dict):
    return variant_build.VariantRecipe(name=f"{study_name}-t{number:04d}", technique=technique, params=params,
                                       file=None, runtimes=SEARCH_RUNTIMES,
                                       where=f"{spec.source}: search trial {number} ({technique})")


def _build_trial_variant(session, manifest, recipe, trial, outcome: TrialOutcome):
    start = time.perf_counter()
    try:
        variant = session.variant(manifest, recipe)
    except HarnessError as exc:       # a configuration the technique refuses: failed, not a number
        raise _TrialFailed(f"build: {exc}") from exc
    outcome.build_s = time.perf_counter() - start
    trial.set_user_attr("build_s", outcome.build_s)
    return variant


def _budgets_before_device(spec, variant, reference, trial) -> list:
    """[(budget, violation)] for the budgets on metrics known before measuring (sizes, host
    accuracy) that the variant has; the variant's such metrics are stored on the trial."""
    try:
        early = [(b, b.violation(value, reference)) for b in spec.budgets if b.before_device
                 for value in [obj.from_variant(b.metric, variant)] if value is not None]
    except ValueError as exc:
        raise _TrialFailed(str(exc)) from exc
    trial.set_user_attr("before_device", {m: obj.from_variant(m, variant)
                                          for m in ("accuracy", "stored_size", "deployed_size")})
    return early


def _exclude(optuna, study, trial, outcome: TrialOutcome, early: list) -> TrialOutcome:
    """A trial that misses a budget before the device: never measured, kept as PRUNED."""
    missed = [b.text for b, v in early if v > 0]
    outcome.state, outcome.feasible, outcome.reasons = "excluded", False, [f"before the device: {t}" for t in missed]
    trial.set_user_attr("excluded", outcome.reasons)
    _set_constraints(trial, [b for b, _ in early], [v for _, v in early])
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return outcome


def _measure_until_valid(session, device, manifest, recipe, study_name: str, trial, outcome: TrialOutcome,
                         remeasure: int):
    """(measurement, why earlier attempts were invalid): measured again while the session's
    validity verdict says invalid, remeasure times at most."""
    start = time.perf_counter()
    measurement, reasons = None, []
    for attempt in range(remeasure + 1):
        try:
            measurement = session.measure(device, manifest, recipe,
                                          search={"study": study_name, "trial": trial.number, "attempt": attempt})
        except HarnessError as exc:
            raise _TrialFailed(f"measure: {exc}") from exc
        validity = measurement.validity or {}
        if validity.get("verdict") != "invalid":
            break
        reasons.append(f"attempt {attempt}: invalid: " + "; ".join(validity.get("reasons") or ["no reason given"]))
        measurement = None
    outcome.measure_s = time.perf_counter() - start
    trial.set_user_attr("measure_s", outcome.measure_s)
    if measurement is None:
        raise _TrialFailed(f"every measurement invalid ({remeasure + 1}): " + " | ".join(reasons))
    return measurement, reasons


def _record_measurement(trial, outcome: TrialOutcome, measurement) -> None:
    outcome.measurement_id = measurement.id
    trial.set_user_attr("measurement_id", measurement.id)
    trial.set_user_attr("run_id", measurement.run_id)


def _objective_values(spec, measurement) -> list:
    values = [obj.from_measurement(o.name, measurement) for o in spec.objectives]
    missing = [o.name for o, v in zip(spec.objectives, values) if v is None]
    if missing:
        raise _TrialFailed(f"the measurement has no {', '.join(missing)} "
                           f"(energy needs a power meter in the device YAML)")
    return values


def _budget_violations(spec, measurement, reference) -> list:
    """Each budget's violation (> 0: missed), told to optuna as constraints."""
    try:
        constraints = []
        for budget in spec.budgets:
            value = obj.from_measurement(budget.metric, measurement)
            if value is None:
                raise _TrialFailed(f"budget {budget.text!r}: the measurement has no {budget.metric}")
            constraints.append(budget.violation(value, reference))
    except ValueError as exc:
        raise _TrialFailed(str(exc)) from exc
    return constraints


def _complete(study, trial, outcome: TrialOutcome, spec, values: list, constraints: list, reasons: list) -> None:
    outcome.state, outcome.values = "complete", values
    outcome.feasible = all(c <= 0 for c in constraints)
    outcome.reasons = [b.text for b, c in zip(spec.budgets, constraints) if c > 0]
    _set_constraints(trial, spec.budgets, constraints)
    trial.set_user_attr("feasible", outcome.feasible)
    if reasons:
        trial.set_user_attr("remeasured", reasons)
    study.tell(trial, values)


def _fail(optuna, study, trial, outcome: TrialOutcome, reason: str) -> TrialOutcome:
    outcome.state, outcome.reasons = "failed", [reason]
    trial.set_user_attr("failed", reason[:2000])
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return outcome


def format_outcome(o: TrialOutcome, spec: SearchSpec) -> str:
    if o.state == "complete":
        values = ", ".join(f"{ob.name} {_fmt(ob.name, v)}" for ob, v in zip(spec.objectives, o.values))
        mark = "feasible" if o.feasible else "infeasible (" + "; ".join(o.reasons) + ")"
        head = f"trial {o.number}: {values}; {mark}"
    else:
        head = f"trial {o.number}: {o.state}: " + "; ".join(o.reasons)
    return f"{head} | {describe(o.technique, o.params)}"


def _fmt(name: str, value: float) -> str:
    if name == "accuracy":
        return f"{100 * value:.2f}%"
    if name in ("p50", "p90"):
        return f"{value:.4g} ms"
    if name == "energy":
        return f"{value * 1e3:.4g} mJ"
    if name == "memory":
        return f"{value:.0f} kB"
    return f"{value:.0f} B"


def trials_data(study_name: str, storage_url: str) -> list:
    """Every trial of a study as plain dicts (for the report and the benchmark)."""
    optuna = _optuna()
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    names = study.user_attrs.get("search", {}).get("objectives") or [f"objective{i}" for i in
                                                                     range(len(study.directions))]
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        if t.state == optuna.trial.TrialState.COMPLETE:
            state = "feasible" if attrs.get("feasible", True) else "infeasible"
        elif t.state == optuna.trial.TrialState.PRUNED:
            state = "excluded"
        else:
            state = t.state.name.lower()
        rows.append({
            "number": t.number, "state": state, "technique": attrs.get("technique"),
            "config": attrs.get("config") or {}, "values": dict(zip(names, t.values)) if t.values else None,
            "reasons": attrs.get("excluded") or ([attrs["failed"]] if "failed" in attrs else []),
            "measurement_id": attrs.get("measurement_id"), "worker": attrs.get("worker"),
            "build_s": attrs.get("build_s"), "measure_s": attrs.get("measure_s")})
    return json.loads(json.dumps(rows, default=str))
