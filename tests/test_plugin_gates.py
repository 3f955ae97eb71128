"""Lab CI's gates in the plugin: each measurement is gated once, also across xdist processes."""
from types import SimpleNamespace

from harness import compare
from harness.pytestplugin import gates
from tests.fake_measurements import fake_measurement


class CountingStore:
    """The store calls the gates make, counted (a gate asks for the key's history)."""

    def __init__(self, new, base):
        self.new, self.base, self.history_calls, self.saved = new, base, 0, []

    def key_history(self, key, metric, exclude_run=None):
        self.history_calls += 1
        return None

    def measurements(self, run_id=None):
        return self.new if run_id == "new" else self.base

    def save_comparison(self, comparison, gate_list):
        self.saved.append(comparison)


def lab_state(new, base):
    store = CountingStore(new, base)
    return SimpleNamespace(verdicts={}, baseline_measurements=None, baseline_run="base",
                           gates=compare.parse_gates(["p50:5%", "mean:5%"]), comparison=None,
                           bench_session=SimpleNamespace(store=store, run_id="new")), store


def measured(median_ms, run_id, id_):
    m = fake_measurement(median_ms=median_ms, run_id=run_id)
    m.id = id_
    return m


def test_a_test_and_the_run_read_one_decision():
    new = measured(2.0, "new", 7)
    state, store = lab_state([new], [measured(1.0, "base", 1)])
    first = gates.verdicts_for(state, new)            # the test's JUnit properties
    gates.judge_run(state)                             # the run's verdict
    assert store.history_calls == 2                    # two gates, each decided once
    assert state.comparison.verdicts == first and len(state.comparison.regressions) == 2
    assert store.saved == [state.comparison]


def test_a_controller_uses_its_workers_verdicts_instead_of_gating_again():
    new = measured(2.0, "new", 7)
    worker_state, _ = lab_state([new], [measured(1.0, "base", 1)])
    sent = [v.to_dict() for v in gates.verdicts_for(worker_state, new)]   # travels with the report
    controller, store = lab_state([new], [measured(1.0, "base", 1)])
    controller.verdicts[new.id] = [gates.verdict_from_dict(d) for d in sent]
    gates.judge_run(controller)
    assert store.history_calls == 0
    assert [v.explain() for v in controller.comparison.verdicts] == [d["text"] for d in sent]
