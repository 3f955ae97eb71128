"""Per-operator profiles (harness/profile.py, the runner's profiled pass) and the measured peak
(harness/profile_peak.py), on the real local device with the demo models."""
import json
from pathlib import Path

import pytest

from harness import modelinfo, profile, variant_build
from harness.cli import main as cli_main
from harness.devices import open_device
from harness.document import DocumentError
from harness.inventory import Inventory, parse_device
from harness.profile_peak import PeakCache
from harness.ondevice.runner import ort_trace_profile
from harness.session import BenchSession
from harness.store import Store

from paths import ROOT
# The operators' summed kernel times lie inside the profiled inference (the spans nest on one
# clock: at most 100%) and cover at least this much of it on the demo models: the rest is
# onnxruntime's own per-operator bookkeeping between kernels (~3 us each; measured 40-55% here).
COVERAGE_FLOOR = 0.10


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo manifests and their fp32 / int8-dynamic variants, built once."""
    cache = tmp_path_factory.mktemp("cache")
    out = {}
    for stem in ("digits_cnn", "digits_mlp"):
        manifest = variant_build.load_manifest(ROOT / "models" / f"{stem}.yaml")
        for name in ("fp32", "int8-dynamic"):
            out[(manifest.name, name)] = (manifest, variant_build.build_variant(manifest, manifest.recipe(name), cache))
    return out


def local(tmp_path):
    return open_device(parse_device({"kind": "local"}, tmp_path / "local.yaml", "local"))


def profiled(dev, manifest, variant, **extra):
    spec = {"model": dev.deploy(variant.path), "inputs": variant_build.input_spec(manifest), "min_iterations": 20,
            "min_duration_s": 0.05, "warmup": 2, "profile": True, "profile_runs": 30, **extra}
    return dev.run(spec)


@pytest.mark.parametrize("model", ["digits-cnn", "digits-mlp"])
@pytest.mark.parametrize("name", ["fp32", "int8-dynamic"])
def test_demo_profiles_on_local_sum_to_the_inference_and_align_to_the_model(tmp_path, demo, model, name):
    manifest, variant = demo[(model, name)]
    with local(tmp_path) as dev:
        raw = profiled(dev, manifest, variant)
    prof = profile.validate(raw["profile"], "local")
    summed = sum(op["time_us"] for op in prof["ops"])
    assert COVERAGE_FLOOR * prof["total_us"] <= summed <= prof["total_us"] * profile.COVERAGE_NESTED
    assert prof["runs"] >= 15 and prof["overhead"] is not None      # few runs are ever disturbed
    facts = modelinfo.node_facts(variant.path, manifest.input_shapes)
    aligned = profile.align(prof, facts)
    # every executed operator is a model node, a fused chain of them, or one the runtime
    # inserted to change the layout; together they account for every MAC of the model
    inserted = [op["op_type"] for op in aligned["ops"] if not op["nodes"]]
    assert set(inserted) <= {"ReorderInput", "ReorderOutput"}
    model_nodes = {f.name for f in facts}
    assert all(set(op["nodes"]) <= model_nodes for op in aligned["ops"])
    assert sum(op["macs"] for op in aligned["ops"]) == modelinfo.facts(variant.path, manifest.input_shapes).macs


def test_unoptimized_profile_names_exactly_the_models_nodes(tmp_path, demo):
    manifest, variant = demo[("digits-mlp", "fp32")]
    with local(tmp_path) as dev:
        raw = profiled(dev, manifest, variant, optimization="disable")
    names = [op["name"] for op in raw["profile"]["ops"]]
    assert names == [f.name for f in modelinfo.node_facts(variant.path) if f.op_type != "Constant"]


def test_litert_offers_no_per_op_timing_and_the_cli_says_not_offered(tmp_path, capsys):
    store = f"sqlite:///{tmp_path / 's.sqlite'}"
    code = cli_main(["profile", str(ROOT / "models" / "digits_mlp.yaml"), "--device", "local", "--variant",
                     "tflite-int8", "--store", store, "--min-duration", "0.05", "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    assert "per-operator profile: not offered: litert" in out and "no per-operator timing" in out
    [m] = Store(store).measurements()
    assert m.profile["offered"] is False and "litert" in m.profile["reason"]


def test_peak_calibration_is_cached_per_device_and_runtime_version(tmp_path):
    calls = []
    with local(tmp_path) as dev:
        def counting_run(spec):
            calls.append(Path(spec["model"]).name)
            return dev.run(spec)

        cache = PeakCache(tmp_path / "peaks", gemm_n=64, stream_elements=1 << 14)
        runtime = {"name": "onnxruntime", "version": __import__("onnxruntime").__version__}
        settings = {"threads": 1, "providers": ["CPUExecutionProvider"]}
        first = cache.peak("local", runtime, settings, counting_run, dev.deploy)
        assert len(calls) == 3 and first["cached"] is False
        again = PeakCache(tmp_path / "peaks", gemm_n=64, stream_elements=1 << 14).peak(
            "local", runtime, settings, counting_run, dev.deploy)
        assert len(calls) == 3 and again["cached"] is True
        assert again["macs_per_s"] == first["macs_per_s"] and again["bytes_per_s"] == first["bytes_per_s"]
        # another board, or other threads, is another peak: measured anew
        cache.peak("rpi5", runtime, settings, counting_run, dev.deploy)
        cache.peak("local", runtime, {**settings, "threads": 2}, counting_run, dev.deploy)
        assert len(calls) == 9
    prov = first["calibration"]
    assert prov["runtime"]["version"] == runtime["version"] and prov["board"]["hostname"]
    assert set(prov["median_s"]) == {"gemm_fp32", "gemm_int8", "stream"}
    assert first["macs_per_s"]["fp32"] > 0 and first["bytes_per_s"] > 0


@pytest.fixture(scope="module")
def profiled_campaign(tmp_path_factory):
    """One profiled campaign on local: digits-cnn fp32, int8-dynamic and tflite-int8 in 2 rounds."""
    import harness.profile_peak as peaks

    tmp = tmp_path_factory.mktemp("campaign")
    manifest = variant_build.load_manifest(ROOT / "models" / "digits_cnn.yaml")
    store = Store(f"sqlite:///{tmp / 's.sqlite'}")
    calibrations, rounds = [], []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(peaks, "GEMM_N", 64)      # a small calibration: these tests check the flow
        mp.setattr(peaks, "STREAM_ELEMENTS", 1 << 14)
        real_measure = peaks.measure_peak
        mp.setattr(peaks, "measure_peak", lambda *a, **k: calibrations.append(1) or real_measure(*a, **k))
        session = BenchSession(Inventory(None), store, [manifest], cache=tmp / "cache",
                          overrides={"profile": True, "rounds": 2, "min_duration_s": 0.05, "warmup": 2})
        session.select([(manifest, manifest.recipe(n)) for n in ("fp32", "int8-dynamic", "tflite-int8")])
        # every round reaches the board through its public run(); the calibration's runs carry no round
        device = session.device("local")
        real_run = device.run
        mp.setattr(device, "run", lambda run_spec: ("round" in run_spec and rounds.append(
            (run_spec["round"], bool(run_spec.get("profile"))))) or real_run(run_spec))
        session.measure("local", manifest, manifest.recipe("fp32"))
        session.close()
    return store, calibrations, rounds


def test_a_profiled_campaign_stores_profile_peak_and_roofline_from_the_last_round_only(profiled_campaign):
    store, calibrations, rounds = profiled_campaign
    assert sorted(rounds) == [(0, False)] * 4 + [(1, True)] * 4    # 3 variants and the control twin
    assert len(calibrations) == 1                # one calibration for the device, re-used by every variant
    stored = {m.variant: m for m in store.measurements()}
    for name in ("fp32", "int8-dynamic"):
        prof = stored[name].profile
        assert prof["peak"]["macs_per_s"]["fp32"] > 0 and prof["roofline"]["variant"]["pct_of_peak"] > 0
        assert prof["aligned"]["matched"] >= 1
    assert stored["tflite-int8"].profile["offered"] is False


def test_the_report_shows_where_the_time_goes(profiled_campaign, tmp_path):
    from harness.report import write_report

    store, _, _ = profiled_campaign
    page = write_report(store, tmp_path / "r.html").read_text()
    start = page.index("<h2 id='profiles'>")
    end = page.find("<h2", start + 1)
    section = page[start:end if end > 0 else len(page)]   # up to the next section
    assert "profile-0-bytype" in section and "profile-0-roofline" in section
    assert "digits-cnn/tflite-int8: per-operator profile not offered: litert" in section
    assert "digits-cnn/int8-dynamic against fp32" in section and "DynamicQuantizeLinear" in section
    assert "digits-cnn/control" not in section
    from harness.report.profile import profile_section

    hostile = store.measurements()[0]
    hostile.variant, hostile.profile = "<img src=x onerror=alert(1)>", {"offered": False, "reason": "<b>no</b>"}
    html_text = profile_section([hostile])
    assert "<img" not in html_text and "<b>" not in html_text and "&lt;img" in html_text


# ------------------------------------------------------------------ pure parts


def good_profile(**extra):
    ops = [{"name": "/conv/Conv", "op_type": "Conv", "time_us": 6.0, "provider": "CPUExecutionProvider",
            "shapes": "float[1,1,8,8] float[4,1,3,3] -> float[1,4,8,8]"},
           {"name": "ReorderOutput", "op_type": "ReorderOutput", "time_us": 2.0, "provider": None,
            "shapes": "float[1,4,8,8] -> float[1,4,8,8]"}]
    return {"source": "onnxruntime-profiler", "unit": "us", "runs": 10, "total_us": 10.0, "ops": ops,
            "coverage": 0.8, "overhead": 0.5, **extra}


@pytest.mark.parametrize("change, field", [
    ({"source": "perf"}, "source"), ({"runs": 0}, "runs"), ({"total_us": 0}, "total_us"), ({"ops": []}, "ops"),
    ({"coverage": 0.5}, "coverage"), ({"coverage": 1.5}, "coverage"), ({"unit": "ms"}, "unit"),
])
def test_a_bad_profile_is_refused_naming_the_field(change, field):
    with pytest.raises(DocumentError, match=rf"board: profile: {field}: expected"):
        profile.validate(good_profile(**change), "board")
    with pytest.raises(DocumentError, match=r"ops\[1\]\.time_us"):
        bad = good_profile()
        bad["ops"][1]["time_us"] = -1
        profile.validate(bad, "board")
    with pytest.raises(DocumentError, match="reason"):
        profile.validate({"offered": False, "reason": ""}, "board")


def test_fused_operators_align_to_their_chain_and_the_roofline_is_arithmetic():
    facts = [modelinfo.NodeFacts("/conv/Conv", "Conv", ("x", "w"), ("c",), 2304, 144, 512),
             modelinfo.NodeFacts("/Relu", "Relu", ("c",), ("r",), 0, 0, 2048)]
    prof = good_profile()
    prof["ops"][0]["name"] = "r_nchwc"        # onnxruntime's name for the fused Conv+Relu writing r
    aligned = profile.align(prof, facts)
    conv, reorder = aligned["ops"]
    assert conv["nodes"] == ["/conv/Conv", "/Relu"] and conv["macs"] == 2304 and conv["bytes"] == 512 + 144
    assert reorder["nodes"] == [] and reorder["macs"] == 0 and reorder["bytes"] == 2 * 256 * 4
    roof = profile.roofline(aligned, {"macs_per_s": {"fp32": 1e9, "int8": 4e9}, "bytes_per_s": 1e9})
    op = roof["ops"][0]
    assert op["achieved_macs_per_s"] == pytest.approx(2304 / 6e-6)
    assert op["intensity"] == pytest.approx(2304 / 656)
    assert op["pct_of_peak"] == pytest.approx(100 * 2304 / 6e-6 / 1e9)
    assert op["bound"] == "compute"
    assert roof["variant"]["pct_of_peak"] == pytest.approx(100 * 2304 / 10e-6 / 1e9)


def test_op_type_difference_says_where_a_variant_lost_its_time():
    a = good_profile()
    b = good_profile(ops=[{"name": "q", "op_type": "DynamicQuantizeLinear", "time_us": 5.0},
                          {"name": "c", "op_type": "ConvInteger", "time_us": 4.0}], total_us=10.0, coverage=0.9)
    rows = profile.op_type_difference(a, b)
    assert rows[0] == {"op_type": "Conv", "a_us": 6.0, "b_us": 0.0, "diff_us": -6.0}
    assert {r["op_type"]: r["diff_us"] for r in rows}["DynamicQuantizeLinear"] == 5.0


def test_trace_parsing_keeps_operators_inside_the_runs_it_keeps():
    def run(ts, dur, nodes):
        return [{"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}] + [
            {"cat": "Node", "name": f"{n}_kernel_time", "ts": ts + 1 + i * 10, "dur": d,
             "args": {"op_name": "Add", "provider": "CPUExecutionProvider"}} for i, (n, d) in enumerate(nodes)]
    events = (run(0, 100, [("a", 50), ("b", 20)])          # the first run: dropped
              + run(1000, 40, [("a", 20), ("b", 10)]) + run(2000, 50, [("a", 30), ("b", 10)])
              + run(3000, 400, [("a", 300), ("b", 10)]))   # preempted: over twice the median, left out
    prof = ort_trace_profile(events)
    assert prof["runs"] == 2 and prof["dropped_runs"] == 2
    assert prof["total_us"] == 45.0
    assert [(o["name"], o["time_us"]) for o in prof["ops"]] == [("a", 25.0), ("b", 10.0)]
    assert prof["coverage"] == pytest.approx(35 / 45)
    profile.validate({**prof, "overhead": None}, "trace")


def test_datasheet_peak_in_the_device_yaml_is_checked(tmp_path):
    spec = parse_device({"kind": "local", "peak": {"macs_per_s": {"fp32": 1.2e10}, "bytes_per_s": 1.7e10,
                                                   "source": "vendor sheet"}}, tmp_path / "local.yaml", "local")
    assert spec.peak == {"macs_per_s": {"fp32": 1.2e10}, "bytes_per_s": 1.7e10, "source": "vendor sheet"}
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match=r"local.yaml: peak.macs_per_s.fp16: unknown field"):
        parse_device({"kind": "local", "peak": {"macs_per_s": {"fp16": 1}}}, tmp_path / "local.yaml", "local")
    with pytest.raises(ConfigError, match=r"peak.bytes_per_s: expected"):
        parse_device({"kind": "local", "peak": {"bytes_per_s": "fast"}}, tmp_path / "local.yaml", "local")


def test_pytest_profile_option_turns_profiles_on_for_a_suite(pytester, tmp_path):
    models, devices = tmp_path / "models", tmp_path / "devices"
    models.mkdir()
    devices.mkdir()
    (models / "tiny.yaml").write_text(f"name: tiny\nbase: {ROOT / 'models' / 'digits_mlp.onnx'}\n"
                                      "variants:\n  - {name: fp32, technique: fp32}\n")
    (devices / "box.yaml").write_text("kind: local\ncapabilities: {runtimes: [onnxruntime]}\n"
                                      "settings: {min_iterations: 20, min_duration_s: 0.05, warmup: 1, rounds: 1}\n")
    pytester.makepyfile(test_suite="def test_latency(measure):\n    assert measure().profile['runs'] >= 1\n")
    store = tmp_path / "h.sqlite"
    args = ["--devices-dir", str(devices), "--models-dir", str(models), "--store", f"sqlite:///{store}",
            "--report", "", "-p", "no:cacheprovider", "--device", "box"]
    pytester.runpytest_subprocess(*args, "--profile", timeout=300).assert_outcomes(passed=1)
    pytester.runpytest_subprocess(*args, timeout=300).assert_outcomes(failed=1)    # off by default
    rows = [json.loads(r[0]) for r in __import__("sqlite3").connect(store).execute("select data from measurements")]
    assert rows[0]["profile"]["roofline"]["variant"]["macs"] == 64 * 32 + 32 * 16 + 16 * 10
    assert rows[1]["profile"] is None


def test_a_device_measured_peak_without_bandwidth_still_gives_a_compute_roofline():
    # an MCU firmware's inner-kernel loop knows its MAC/s, not a streaming bandwidth
    facts = [modelinfo.NodeFacts("/conv/Conv", "Conv", ("x", "w"), ("c",), 2304, 144, 512)]
    prof = good_profile()
    roof = profile.roofline(profile.align(prof, facts), {"macs_per_s": {"fp32": 1e8}, "bytes_per_s": None})
    assert roof["ops"][0]["pct_of_peak"] == pytest.approx(100 * 2304 / 6e-6 / 1e8)
    assert roof["ops"][0]["pct_of_roof"] is None and roof["ops"][0]["bound"] is None
    from harness.report.profile import roofline_figure

    class M:
        device, model, variant, variant_id = "m3", "x", "int8", "x/int8"
        profile = {**prof, "peak": {"macs_per_s": {"fp32": 1e8}, "bytes_per_s": None}, "roofline": roof}
    assert roofline_figure("m3", [M()]).data     # the flat roof and the points
