"""An example of a deployment budget, the kind of test a team writes for its product:
"on this board, the model must answer in under X ms at p99 with at least Y% top-1".

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
    assert m.latency.p99_ms < p99_budget_ms, (
        f"{variant.id} on {device_spec.name}: p99 {m.latency.p99_ms:.3f} ms over budget {p99_budget_ms} ms")
    if m.accuracy is not None:
        assert m.accuracy >= min_top1, f"{variant.id}: top-1 {m.accuracy:.3f} below {min_top1}"
