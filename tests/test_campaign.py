"""A device's campaign on the real `local` kind: every variant once per round, in an order
drawn from a stored seed; a variant that fails is remembered, the others are measured."""
import json

import pytest

from harness import variant_build
from harness.errors import HarnessError
from harness.inventory import Inventory
from harness.session import BenchSession
from harness.store import Store
from onnx_models import single_op_model


def lab(tmp_path, control=False, rounds=3):
    (tmp_path / "models").mkdir(parents=True)
    single_op_model(tmp_path / "models" / "base.onnx", op="Relu")
    single_op_model(tmp_path / "models" / "broken.onnx", op="NoSuchOperator")   # onnxruntime refuses it
    (tmp_path / "models" / "tiny.yaml").write_text(
        "name: tiny\nbase: base.onnx\n" + ("control: true\n" if control else "") +
        "variants:\n  - {name: fp32, technique: fp32}\n  - {name: fp16, technique: fp16}\n"
        "  - {name: copy, file: base.onnx}\n  - {name: broken, file: broken.onnx}\n")
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "local.yaml").write_text(
        "kind: local\ncapabilities: {runtimes: [onnxruntime]}\n"
        f"settings: {{min_duration_s: 0.03, min_iterations: 30, warmup: 2, rounds: {rounds}}}\n")
    return tmp_path


def session(path, seed):
    manifests = variant_build.load_manifests(path / "models")
    s = BenchSession(Inventory(path / "devices"), Store(f"sqlite:///{path / 'store.sqlite'}"), manifests,
                cache=path / "cache", order_seed=seed)
    s.select(variant_build.select(manifests, None))
    return s, manifests[0]


def orders(measurements) -> list:
    """The order of each round, rebuilt from the positions stored on the measurements."""
    rounds = len(measurements[0].provenance["campaign"]["positions"])
    out = []
    for r in range(rounds):
        slots = {m.provenance["campaign"]["positions"][r]: m.variant for m in measurements}
        out.append([variant for _, variant in sorted(slots.items())])
    return out


def test_one_ask_measures_the_whole_campaign_in_seeded_rounds(tmp_path):
    path = lab(tmp_path)
    s, manifest = session(path, seed=11)
    first = s.measure("local", manifest, manifest.recipe("fp32"))
    # one ask measured every runnable variant of the device, each in 3 rounds
    assert {m.variant for m in s.measured} == {"fp32", "fp16", "copy"}
    for m in s.measured:
        assert m.latency.rounds == 3 and len(m.round_sizes) == 3
        assert len(m.provenance["timed_loop"]["rounds"]) == 3
        assert m.provenance["campaign"]["seed"] == 11 and m.settings["rounds"] == 3
        # each round got a third of the budget; the whole measurement the full one
        assert m.provenance["timed_loop"]["iterations"] >= 30
        assert m.machine["rounds"] and m.validity["verdict"] in ("valid", "invalid")
    again = s.measure("local", manifest, manifest.recipe("fp32"))
    assert again is first and len(s.measured) == 3          # read, not measured twice
    seeded = orders(s.measured)
    assert all(sorted(o) == ["copy", "fp16", "fp32"] for o in seeded)
    s.close()

    # the same seed replays the same order; another seed draws another
    s2, manifest2 = session(lab(tmp_path / "again"), seed=11)
    s2.measure("local", manifest2, manifest2.recipe("fp32"))
    assert orders(s2.measured) == seeded
    s2.close()
    s3, manifest3 = session(lab(tmp_path / "other"), seed=12)
    s3.measure("local", manifest3, manifest3.recipe("fp32"))
    assert orders(s3.measured) != seeded
    s3.close()
    stored = Store(f"sqlite:///{path / 'store.sqlite'}")
    assert json.loads(json.dumps(stored.runs()[0]["settings"]))["order_seed"] == 11


def test_a_failing_variant_is_remembered_and_the_others_measured(tmp_path):
    path = lab(tmp_path, rounds=2)
    s, manifest = session(path, seed=1)
    # onnxruntime refuses the model: the build's check says so before any device round
    with pytest.raises(HarnessError) as first:
        s.measure("local", manifest, manifest.recipe("broken"))
    assert "broken" in str(first.value) and "NoSuchOperator" in str(first.value)
    assert {m.variant for m in s.measured} == {"fp32", "fp16", "copy"}   # the campaign went on
    with pytest.raises(HarnessError) as second:
        s.measure("local", manifest, manifest.recipe("broken"))
    assert second.value is first.value                                  # asked once, not re-run
    s.close()


def test_identical_bytes_are_tied_and_a_control_twin_measures_the_noise_floor(tmp_path):
    from harness import decide

    path = lab(tmp_path, control=True)
    s, manifest = session(path, seed=5)
    s.measure("local", manifest, manifest.recipe("fp32"))
    by_variant = {m.variant: m for m in s.measured}
    assert decide.CONTROL_VARIANT in by_variant
    control = by_variant[decide.CONTROL_VARIANT]
    assert control.model_sha256 == by_variant["fp32"].model_sha256 == by_variant["copy"].model_sha256
    relation, ratio = decide.latency_relation(by_variant["fp32"], by_variant["copy"], floor=0.02)
    assert relation == "tied" and ratio.identical and ratio.paired
    floors = decide.noise_floor(s.measured)
    assert floors["local"] >= 0.02
    s.close()


def test_round_spec_splits_the_budget():
    spec = {"model": "m", "min_duration_s": 1.5, "min_iterations": 50, "max_iterations": 1000,
            "dataset": "d", "rounds": 3}
    first = BenchSession.round_spec(spec, 0, 3)
    last = BenchSession.round_spec(spec, 2, 3)
    assert first["min_duration_s"] == pytest.approx(0.5) and first["min_iterations"] == 17
    assert first["max_iterations"] == 334 and "dataset" not in first and "rounds" not in first
    assert last["dataset"] == "d" and last["round"] == 2


def test_a_variant_that_could_not_be_measured_is_listed_in_the_report(tmp_path):
    from harness.report import write_report

    path = lab(tmp_path, rounds=1)
    s, manifest = session(path, seed=1)
    s.measure("local", manifest, manifest.recipe("fp32"))
    s.close()
    page = write_report(s.store, tmp_path / "r.html", run_id=s.run_id).read_text()
    listed = page[page.index("<h2>Not measured</h2>"):]
    assert "local tiny/broken" in listed and "NoSuchOperator" in listed
    assert "nothing to plot: no measurement here has a top-1 accuracy" in page   # the manifest has no dataset


def test_a_board_that_cannot_run_the_base_model_gets_no_control_twin(tmp_path):
    """The A/A twin is the base model again: on a board without its runtime (a LiteRT-only
    image) it is left out, not scheduled and failed."""
    from paths import ROOT

    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "local.yaml").write_text(
        "kind: local\ncapabilities: {runtimes: [litert]}\n"
        "settings: {min_duration_s: 0.02, min_iterations: 20, warmup: 2, rounds: 1}\n")
    manifests = variant_build.load_manifests(ROOT / "models")
    [manifest] = [m for m in manifests if m.name == "digits-mlp"]
    assert manifest.control
    s = BenchSession(Inventory(tmp_path / "devices"), Store(f"sqlite:///{tmp_path / 'store.sqlite'}"), manifests,
                cache=tmp_path / "cache", order_seed=1)
    s.select(variant_build.select(manifests, ["digits-mlp/tflite-int8"]))
    s.measure("local", manifest, manifest.recipe("tflite-int8"))
    assert [m.variant for m in s.measured] == ["tflite-int8"]
    assert not s.failures, s.failures
