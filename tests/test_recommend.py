"""What to deploy where: the fastest valid variant within the accuracy budget that failed no
test, decided with the tie rules; ties go to the smaller stored model."""
from types import SimpleNamespace

from harness.recommend import recommend
from fake_measurements import measured_in_rounds


def variant(name, rounds, accuracy=0.97, stored=5000, technique=None, sha=None):
    m = measured_in_rounds(rounds, variant=name, accuracy=accuracy, sha=(sha or name[0]) * 64, spread=0.001)
    m.technique = technique or name
    m.storage_bytes = stored
    return m


def test_the_fastest_candidate_is_recommended_and_the_others_say_why_not():
    fp32 = variant("fp32", [1.0, 1.1, 0.95])
    lossy = variant("int8-lossy", [0.3, 0.33, 0.285], accuracy=0.80)           # fastest, over budget
    fast = variant("tflite-fp32", [0.5, 0.55, 0.475], stored=7000)
    twin = variant("tflite-fp16", [0.5, 0.55, 0.476], stored=6000)              # tied with it, smaller
    broken = variant("fp16", [0.4, 0.44, 0.38])
    broken.validity = {"verdict": "invalid", "reasons": ["round 2: contention"]}
    failing = variant("int8", [0.45, 0.495, 0.4275])
    manifests = {"digits-cnn": SimpleNamespace(max_accuracy_drop=0.03)}
    outcomes = {("local", "digits-cnn/int8"): {"passed": [], "failed": ["test_latency_accuracy_budget"]},
                ("local", "digits-cnn/tflite-fp16"): {"passed": ["test_latency"], "failed": []}}
    [rec] = recommend([fp32, lossy, fast, twin, broken, failing], outcomes, manifests)
    assert rec.variant == "tflite-fp16" and rec.tied_with == ["tflite-fp32"]
    assert 1.9 < rec.speedup < 2.1 and rec.relation == "faster"
    assert rec.speedup_interval[0] < rec.speedup < rec.speedup_interval[1]
    assert "int8-lossy" in rec.excluded and "top-1" in rec.excluded["int8-lossy"]
    assert rec.excluded["fp16"].startswith("invalid") and rec.excluded["int8"].startswith("failed")
    assert "deploy digits-cnn/tflite-fp16" in rec.reason and "passed 1 test" in rec.reason


def test_nothing_decidedly_faster_keeps_fp32_and_says_so():
    fp32 = variant("fp32", [1.0, 1.1, 0.95], stored=5000, technique="fp32")
    same = variant("pruned", [1.0, 1.1, 0.95], stored=5000)
    [rec] = recommend([fp32, same])
    assert rec.variant == "fp32" and "no compressed variant is decidedly faster" in rec.reason


def test_no_candidate_is_an_answer_too():
    fp32 = variant("fp32", [1.0, 1.0, 1.0])
    fp32.validity = {"verdict": "invalid", "reasons": ["round 1: contention"]}
    [rec] = recommend([fp32])
    assert rec.variant is None and "1 invalid" in rec.reason
