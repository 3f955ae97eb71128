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

from harness.stats import supported

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
    if device_spec.emulation == "wall-clock":
        # qemu-user: the wall clock of an emulated CPU, 10-100x a real board's and moved by
        # the host's load, says nothing about the product's budget; its accuracy does
        if m.accuracy is not None:
            assert m.accuracy >= min_top1, f"{variant.id}: top-1 {m.accuracy:.3f} below {min_top1}"
        pytest.skip(f"{device_spec.name} is emulated (emulation: wall-clock): no latency budget on an "
                    f"emulated CPU's wall clock")
    # A microcontroller reports one latency per MLPerf Tiny window (too few for a p99): its
    # budget is judged, as MLPerf Tiny does, on the median of the windows.
    statistic = "p99_ms" if supported("p99", m.latency.n) else "p50_ms"
    value = m.require(statistic)
    assert value < p99_budget_ms, (
        f"{variant.id} on {device_spec.name}: {statistic[:-3]} {value:.3f} ms (median over "
        f"{m.latency.rounds} rounds) over budget {p99_budget_ms} ms")
    if m.accuracy is not None:
        assert m.accuracy >= min_top1, f"{variant.id}: top-1 {m.accuracy:.3f} below {min_top1}"
