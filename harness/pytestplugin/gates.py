"""The regression gates of lab CI (--baseline, --compare-fail): each measurement gated once.

A measurement is gated where a test first reads it (harness.pytestplugin.lab puts its
regressions in the test's JUnit properties); its verdicts travel with the test report, so an
xdist controller builds the run's comparison from its workers' verdicts. Only a measurement
no test read (a campaign measures a device's whole selection) is gated at the run's end.
"""
from __future__ import annotations

from ..errors import HarnessError
from .state import HarnessState


def resolve_baseline(state: HarnessState) -> None:
    """The --baseline reference as a run id (the controller's answer, handed to workers)."""
    store = state.bench_session.store
    try:
        state.baseline_run = store.resolve_run(state.baseline_ref, exclude=state.bench_session.run_id)
    except HarnessError:
        if state.baseline_ref != "latest" or any(r["measurements"] for r in store.runs()):
            raise
        # the lab's first night: nothing to compare with yet, which is no error
        state.baseline_note = "--baseline latest: no earlier run with measurements; nothing compared"


def _baseline(state: HarnessState) -> dict:
    if state.baseline_measurements is None:
        from ..compare import measurement_key

        state.baseline_measurements = {measurement_key(m): m for m in
                                       state.bench_session.store.measurements(run_id=state.baseline_run)}
    return state.baseline_measurements


def verdicts_for(state: HarnessState, m) -> list:
    """Every gate on one new measurement, decided once (the test's JUnit properties and the
    run's verdict read the same answer)."""
    if m.id not in state.verdicts:
        from .. import compare

        key = compare.measurement_key(m)
        base = _baseline(state).get(key)
        store = state.bench_session.store
        state.verdicts[m.id] = (
            [compare.compare_measurement(base, m, g, store.key_history(key, g.metric, exclude_run=m.run_id))
             for g in state.gates] if base else [])
    return state.verdicts[m.id]


def judge_run(state: HarnessState) -> None:
    """The run's comparison with the baseline, stored: every worker's newest measurement per
    key, with the verdicts its test decided (or decided now, for one no test read)."""
    from .. import compare

    store = state.bench_session.store
    run_id = state.bench_session.run_id
    newest = {}
    for m in store.measurements(run_id=run_id):   # every worker's; a re-measure replaces
        newest[compare.measurement_key(m)] = m
    comparison = compare.Comparison(state.baseline_run, run_id)
    for key, m in newest.items():
        if key not in _baseline(state):
            comparison.unmatched.append(key)
        comparison.verdicts += verdicts_for(state, m)
    state.comparison = comparison
    store.save_comparison(comparison, state.gates)


def verdict_from_dict(d: dict):
    """A compare.Verdict back from Verdict.to_dict() (sent by an xdist worker)."""
    from ..compare import Verdict, parse_gate

    return Verdict(key=(d["device"], d["model"], d["variant"]), gate=parse_gate(d["gate"]), base=d["base"],
                   new=d["new"], change=d["change"], ci=tuple(d["ci"]) if d["ci"] else None,
                   p_value=d["p_value"], significant=d["significant"], regression=d["regression"],
                   note=d["note"], test=d["test"], history_runs=d["history_runs"],
                   history_limit=d["history_limit"])
