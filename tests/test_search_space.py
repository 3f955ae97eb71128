"""The search's pure parts: budgets, objectives, the search: section, fronts, hypervolume,
and the report figures' data. No device, no store."""

import pytest

from harness import variant_build
from harness.errors import ConfigError
from harness.search import front
from harness.search.objectives import parse_budget
from harness.search.results import summarize_search
from harness.search.space import describe, load_search
from paths import ROOT

LAYERS = ["/fc1/Gemm", "/fc2/Gemm", "/fc3/Gemm"]


def manifest_with(tmp_path, search: str, name="m.yaml"):
    path = tmp_path / name
    path.write_text(f"name: mlp\nbase: {ROOT / 'models' / 'digits_mlp.onnx'}\ndataset: digits\n"
                    f"variants:\n  - {{name: fp32, technique: fp32}}\n{search}")
    return variant_build.load_manifest(path)


# ---------------------------------------------------------------- budgets


@pytest.mark.parametrize("text,metric,op,limit,drop", [
    ("p90 < 5 ms", "p90", "<", 5.0, False),
    ("p50 <= 800 us", "p50", "<=", 0.8, False),
    ("accuracy drop < 1 pt", "accuracy", "<", 0.01, True),
    ("accuracy >= 95 %", "accuracy", ">=", 0.95, False),
    ("stored size <= 4 KB", "stored_size", "<=", 4096.0, False),
    ("deployed-size < 2 MB", "deployed_size", "<", 2 * 1024.0 ** 2, False),
    ("energy < 0.2 mJ", "energy", "<", 0.0002, False),
    ("peak memory < 64 MB", "memory", "<", 65536.0, False),
])
def test_budgets_parse_to_canonical_units(text, metric, op, limit, drop):
    b = parse_budget("m.yaml", "search.budgets[0]", text)
    assert (b.metric, b.op, b.drop) == (metric, op, drop)
    assert b.limit == pytest.approx(limit)


@pytest.mark.parametrize("text,hint", [
    ("p90 5 ms", "a budget like"), ("latency99 < 5 ms", "metrics:"), ("p90 < 5 KB", "a unit for p90"),
    ("p90 drop < 1 ms", "'drop' only with accuracy")])
def test_bad_budget_names_the_field_and_what_is_expected(text, hint):
    with pytest.raises(ConfigError) as err:
        parse_budget("m.yaml", "search.budgets[1]", text)
    assert "m.yaml" in str(err.value) and "search.budgets[1]" in str(err.value) and hint in str(err.value)


def test_violation_sign_and_strictness():
    p90 = parse_budget("m", "b", "p90 < 5 ms")
    assert p90.violation(4.0) == -1.0 and p90.violation(6.0) == 1.0 and p90.violation(5.0) > 0
    assert parse_budget("m", "b", "p90 <= 5 ms").violation(5.0) == 0
    drop = parse_budget("m", "b", "accuracy drop < 1 pt")
    assert drop.violation(0.965, reference_accuracy=0.97) < 0
    assert drop.violation(0.95, reference_accuracy=0.97) == pytest.approx(0.01)
    acc = parse_budget("m", "b", "accuracy > 90 %")
    assert acc.violation(0.95) < 0 < acc.violation(0.85)


# ---------------------------------------------------------------- the search: section

SECTION = """search:
  objectives: [accuracy, p90]
  budgets: ["p90 < 5 ms", "accuracy drop < 2 pt"]
  seed: 3
  techniques:
    fixed-point:
      layer_bits: {per_layer: true, choices: [4, 8]}
      activation_bits: 8
    prune-magnitude:
      layer_sparsity: {per_layer: true, layers: ["/fc1/Gemm"], low: 0.0, high: 0.9, step: 0.1}
      fine_tune: false
"""


def test_section_loads_with_per_layer_dimensions(tmp_path):
    spec = load_search(manifest_with(tmp_path, SECTION))
    assert [o.name for o in spec.objectives] == ["accuracy", "p90"]
    assert spec.directions == ["maximize", "minimize"]
    assert spec.seed == 3 and spec.sampler == "nsga2"
    fp, pm = spec.techniques
    assert fp.fixed == {"activation_bits": 8}
    assert fp.searched[0].layers == tuple(LAYERS)
    assert [d.name for d in fp.searched[0].dimensions] == [f"fixed-point.layer_bits[{n}]" for n in LAYERS]
    assert pm.searched[0].layers == ("/fc1/Gemm",)
    dim = pm.searched[0].dimensions[0]
    assert (dim.low, dim.high, dim.step, dim.integer) == (0.0, 0.9, 0.1, False)


def test_a_trial_samples_a_technique_and_its_per_layer_values(tmp_path):
    optuna = pytest.importorskip("optuna")
    spec = load_search(manifest_with(tmp_path, SECTION))
    fixed = {"technique": "fixed-point", **{f"fixed-point.layer_bits[{n}]": b for n, b in zip(LAYERS, (4, 8, 4))}}
    technique, params = spec.sample(optuna.trial.FixedTrial(fixed))
    assert technique == "fixed-point"
    assert params == {"activation_bits": 8, "layer_bits": dict(zip(LAYERS, (4, 8, 4)))}
    assert describe(technique, params) == ("fixed-point: activation_bits 8; layer_bits /fc1/Gemm 4, "
                                           "/fc2/Gemm 8, /fc3/Gemm 4")


@pytest.mark.parametrize("section,field,expected", [
    ("search:\n  objectives: [speed]\n  techniques: {fp16: {}}\n", "search.objectives[0]", "one of accuracy"),
    ("search:\n  objectives: [p50]\n  techniques: {shrink: {}}\n", "search.techniques.shrink", "one of"),
    ("search:\n  objectives: [p50]\n  techniques: {fixed-point: {layer_bitz: 4}}\n",
     "search.techniques.fixed-point.layer_bitz", "did you mean 'layer_bits'"),
    ("search:\n  objectives: [p50]\n  techniques:\n    fixed-point:\n      layer_bits: {per_layer: true, "
     "layers: [/fc9/Gemm], choices: [4]}\n", "layers[0]", "a weight layer of the base model (/fc1/Gemm"),
    ("search:\n  objectives: [p50]\n  techniques:\n    prune-magnitude:\n      sparsity: {low: 0.9, high: 0.1}\n",
     "sparsity.high", "a number >= low"),
    ("search:\n  objectives: [p50]\n  sampler: grid\n  techniques: {fp16: {}}\n", "search.sampler", "nsga2, tpe"),
    ("variants2: []\n", "search", "a search: section"),
])
def test_bad_section_names_file_field_and_expectation(tmp_path, section, field, expected):
    manifest = manifest_with(tmp_path, section if section.startswith("search") else "")
    with pytest.raises(ConfigError) as err:
        load_search(manifest)
    text = str(err.value)
    assert str(manifest.source) in text and field in text and expected in text, text


# ---------------------------------------------------------------- fronts and hypervolume


def test_hypervolume_exact_in_two_and_three_dimensions():
    assert front.hypervolume([(1, 2), (2, 1)], (3, 3)) == pytest.approx(3.0)
    assert front.hypervolume([(1, 2), (2, 1), (2, 2)], (3, 3)) == pytest.approx(3.0)   # dominated adds nothing
    assert front.hypervolume([(0, 0, 0)], (1, 2, 3)) == pytest.approx(6.0)
    # two boxes 2x2x1 and 1x1x3 overlapping in 1x1x1: 4 + 3 - 1
    assert front.hypervolume([(0, 0, 2), (1, 1, 0)], (2, 2, 3)) == pytest.approx(6.0)
    assert front.hypervolume([(4, 0)], (3, 3)) == 0.0                                  # beyond the reference


def test_front_dominance_and_history():
    pts = [(1, 5), None, (2, 2), (3, 3), (2, 2), (5, 1)]
    assert front.front_indices(pts) == [0, 2, 4, 5]
    assert front.dominates_or_ties((2, 2), (2, 2)) and not front.dominates((2, 2), (2, 2))
    history = front.hypervolume_history(pts, (6, 6))
    assert history == sorted(history) and history[1] == history[0] and history[3] == history[2]
    assert front.to_minimize((0.9, 3.0), ("maximize", "minimize")) == (-0.9, 3.0)


def test_summary_compares_the_found_front_with_the_hand_written_variants():
    trials = [
        {"number": 0, "state": "feasible", "technique": "fixed-point", "config": {"layer_bits": {"a": 4}},
         "values": {"accuracy": 0.96, "p50": 1.0}},
        {"number": 1, "state": "excluded", "technique": "prune-magnitude", "config": {}, "values": None},
        {"number": 2, "state": "infeasible", "technique": "low-rank", "config": {},
         "values": {"accuracy": 0.99, "p50": 0.1}},     # best of all, but outside a budget
        {"number": 3, "state": "feasible", "technique": "mixed-precision", "config": {},
         "values": {"accuracy": 0.97, "p50": 0.5}},
    ]
    hand = [{"name": "fp32", "values": {"accuracy": 0.97, "p50": 0.6}},
            {"name": "int8", "values": {"accuracy": 0.95, "p50": 0.8}}]
    s = summarize_search(trials, hand, ["accuracy", "p50"])
    assert [t["number"] for t in s["trials"] if t["on_front"]] == [3]
    assert s["dominating"] == [3]                   # ties fp32 on accuracy, faster: dominates or ties both
    assert [h["name"] for h in s["handwritten"] if h["on_front"]] == ["fp32"]
    assert s["hypervolume_found"] > s["hypervolume_handwritten"] > 0
    assert [h["hypervolume"] for h in s["hypervolume_history"]][1] == s["hypervolume_history"][0]["hypervolume"]
    assert s["trials"][0]["description"] == "fixed-point: layer_bits a 4"
    worse = summarize_search(trials[:1], hand, ["accuracy", "p50"])
    assert worse["dominating"] == []
    tie = summarize_search(trials, hand + [{"name": "same", "values": {"accuracy": 0.97, "p50": 0.5}}],
                           ["accuracy", "p50"])
    assert tie["dominating"] == [3]                 # a tie with a hand-written variant still counts
    lossy = {"name": "lossy", "values": {"accuracy": 0.5, "p50": 0.01}, "feasible": False, "reasons": ["x"]}
    outside = summarize_search(trials, hand + [lossy], ["accuracy", "p50"])
    assert outside["dominating"] == [3]             # a variant outside the budgets is shown, not compared
    assert outside["hypervolume_handwritten"] == pytest.approx(s["hypervolume_handwritten"])
    assert not outside["handwritten"][-1]["on_front"]


def test_report_figures_escape_names_and_show_every_part():
    from harness.report.search import front_table_html, search_figures

    trials = [{"number": 0, "state": "feasible", "technique": "fixed-point", "config": {"<b>x": 1},
               "values": {"accuracy": 0.9, "p50": 1.0, "stored_size": 100.0}, "reasons": []},
              {"number": 1, "state": "infeasible", "technique": "fixed-point", "config": {},
               "values": {"accuracy": 0.95, "p50": 2.0, "stored_size": 50.0}, "reasons": ["p90 < 5 ms"]}]
    s = summarize_search(trials, [{"name": "<script>", "values": {"accuracy": 0.8, "p50": 0.5,
                                                                   "stored_size": 10.0}}],
                         ["accuracy", "p50", "stored_size"])
    figs = search_figures(s)
    assert len(figs) == 3 + 1                       # every pair of objectives, then the hypervolume
    names = {trace.name for trace in figs[0].data}
    assert {"trials, feasible", "trials, infeasible", "found front", "hand-written variants"} <= names
    hand = next(t for t in figs[0].data if t.name == "hand-written variants")
    assert list(hand.text) == ["&lt;script&gt;"]
    table = front_table_html(s)
    assert "&lt;b&gt;x 1" in table and "<b>x" not in table
