"""An example of a deployment budget, the kind of test a team writes for its product:
"on this board, the model must answer in under X ms at p99 with at least Y% top-1".

The latency is judged on `m.require("p99_ms")`: the p99 of each round, median over the
rounds (one disturbed round can neither pass nor fail the budget), and only when the
measurement is valid and holds enough samples for a p99; otherwise the test fails with the
reasons (docs/measurement.md). The budgets below carry a margin of several times the demo
models' p99 on a desktop CPU, so a busy machine passes and a variant that truly breaks its
budget (a slower model, a throttled board) does not.

Edit BUDGETS for your own product; a variant without a budget is skipped.
"""
import pytest

BUDGETS = {
    # model: (p99 latency ms, minimum top-1)
    "digits-cnn": (5.0, 0.95),
    "digits-mlp": (2.0, 0.95),
}


def test_latency_accuracy_budget(measure, variant, device_spec):
    if variant.model not in BUDGETS:
        pytest.skip(f"no budget for {variant.model}")
    p99_budget_ms, min_top1 = BUDGETS[variant.model]
    m = measure()
    p99 = m.require("p99_ms")
    assert p99 < p99_budget_ms, (
        f"{variant.id} on {device_spec.name}: p99 {p99:.3f} ms (median over {m.latency.rounds} rounds) "
        f"over budget {p99_budget_ms} ms")
    if m.accuracy is not None:
        assert m.accuracy >= min_top1, f"{variant.id}: top-1 {m.accuracy:.3f} below {min_top1}"
