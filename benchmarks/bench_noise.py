"""Does noise decide what the harness reports? (issue: numbers you can decide on)

    python benchmarks/bench_noise.py                    # all four, default sizes
    python benchmarks/bench_noise.py aa ab --repeats 20 --rounds 5

aa        A/A false positives: one network as two variants (byte-different files that compute
          exactly the same thing, so the identical-bytes rule cannot hide anything), measured
          in campaigns on `local` while a background load (two CPU-burning processes the
          script starts itself) is switched on and off between rounds. Over the repeats: the
          share reported as different, the share where one of the pair falls off the latency
          Pareto front, and the share flagged as a regression by the nightly gate (each
          repeat against the previous one, with the earlier repeats as history).
          Target: at most 5% each.
ab        A/B detection: the second variant is truly about 10% slower by construction (11
          MatMul layers against 10); a quiet reference loop in this process, alternating the
          two sessions in blocks, gives the true ratio. Over the repeats: the share detected
          as slower, and the error of the reported ratio against the reference.
          Target: at least 95% detected, ratio within 2%.
fidelity  the headline median of one variant against an independent tight loop in this
          process with the same session settings, the two interleaved over rounds.
          Target: within 1%.
cost      wall time of `pytest suites/ --device local` over the demo zoo with rounds
          (the default 3) against one round (the first release's single window).

Figures are ratios within one run on a shared machine; nothing here asserts.
"""
from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repo_root import ROOT as REPO
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx.helper as oh  # noqa: E402

from harness import compare, decide, variant_build  # noqa: E402
from harness.inventory import Inventory  # noqa: E402
from harness.session import BenchSession  # noqa: E402
from harness.store import Store  # noqa: E402

WIDTH = 256
HOG = "import time\nwhile True:\n    sum(i * i for i in range(10000))\n"


def matmul_chain(path: Path, layers: int, tag: str = "") -> Path:
    """`layers` MatMul+Relu layers of WIDTH x WIDTH; `tag` changes the bytes, not the maths."""
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = oh.make_tensor(f"w{i}", onnx.TensorProto.FLOAT, [WIDTH, WIDTH],
                           (rng.standard_normal((WIDTH, WIDTH)) / math.sqrt(WIDTH)).astype(np.float32).ravel())
        inits.append(w)
        nodes += [oh.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]), oh.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        x = f"r{i}"
    graph = oh.make_graph(nodes, "chain", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, WIDTH])],
                          [oh.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [1, WIDTH])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], doc_string=tag)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


class Hog:
    """Two CPU-burning processes, on or off (2 cores: with them the runner has to share)."""

    def __init__(self):
        self.procs = []

    def set(self, on: bool):
        if on and not self.procs:
            self.procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
            time.sleep(0.5)   # burning before the round's first visit: the switch lands between rounds
        elif not on and self.procs:
            for p in self.procs:
                p.kill()
                p.wait()
            self.procs = []


def lab(folder: Path, layers_b: int, tag_b: str, rounds: int, seconds: float) -> tuple:
    (folder / "models").mkdir(parents=True)
    matmul_chain(folder / "models" / "a.onnx", 10, "a")
    matmul_chain(folder / "models" / "b.onnx", layers_b, tag_b)
    (folder / "models" / "pair.yaml").write_text(
        "name: pair\nbase: a.onnx\nvariants:\n  - {name: fp32, technique: fp32}\n  - {name: b, file: b.onnx}\n")
    (folder / "devices").mkdir()
    (folder / "devices" / "local.yaml").write_text(
        "kind: local\ncapabilities: {runtimes: [onnxruntime]}\n"
        f"settings: {{min_duration_s: {seconds}, min_iterations: 100, warmup: 50, rounds: {rounds}}}\n")
    return folder


def campaign(folder: Path, store: Store, seed: int, hog: Hog, pattern) -> list:
    manifests = variant_build.load_manifests(folder / "models")
    s = BenchSession(Inventory(folder / "devices"), store, manifests, cache=folder / "cache", order_seed=seed,
                before_round=lambda device, r: hog.set(pattern(r)))
    s.select(variant_build.select(manifests, None))
    manifest = manifests[0]
    try:
        s.measure("local", manifest, manifest.recipe("fp32"))
    finally:
        hog.set(False)
        s.close()
    return sorted(s.measured, key=lambda m: m.variant != "fp32")


def repeats(kind: str, n: int, rounds: int, seconds: float, tmp: Path) -> list:
    layers_b, tag_b = (10, "b") if kind == "aa" else (11, "b")
    folder = lab(tmp / kind, layers_b, tag_b, rounds, seconds)
    store = Store(f"sqlite:///{folder / 'store.sqlite'}")
    hog = Hog()
    out = []
    for i in range(n):
        # the load's pattern changes from repeat to repeat: on in some rounds, off in others
        rng = np.random.default_rng(1000 + i)
        pattern_bits = rng.random(rounds) < 0.5
        out.append(campaign(folder, store, seed=i, hog=hog, pattern=lambda r: bool(pattern_bits[r])))
        print(f"  {kind} repeat {i + 1}/{n}: " + "  ".join(
            f"{m.variant} {1e3 * m.latency.p50_ms:.1f} us ({m.verdict})" for m in out[-1]), flush=True)
    return out


def bench_aa(n: int, rounds: int, seconds: float, tmp: Path):
    runs = repeats("aa", n, rounds, seconds, tmp)
    different = off_front = regressions = 0
    gate = compare.parse_gate("p50:5%")
    history = []
    for i, (a, b) in enumerate(runs):
        relation, _ = decide.latency_relation(a, b, floor=0.02)
        different += relation != "tied"
        off_front += not all(decide.pareto_front([a, b], "latency", 0.02))
        if i > 0:
            v = compare.compare_measurement(runs[i - 1][1], b, gate, history=list(history))
            regressions += v.regression
        history.append(b.latency.p50_ms)
    print(f"A/A ({n} repeats, {rounds} rounds, load switched between rounds): reported different "
          f"{different}/{n} = {100 * different / n:.0f}%, off the Pareto front {off_front}/{n} = "
          f"{100 * off_front / n:.0f}%, flagged as a regression {regressions}/{n - 1} = "
          f"{100 * regressions / max(1, n - 1):.0f}% (target <= 5% each)")


def reference_ratio(folder: Path, seconds: float = 6.0) -> float:
    """b / a from one process, the two sessions alternating in blocks (quiet: no hog)."""
    import onnxruntime as ort

    def session(path):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    a, b = session(folder / "models" / "a.onnx"), session(folder / "models" / "b.onnx")
    feed = {"x": np.random.default_rng(0).random((1, WIDTH), dtype=np.float32)}
    samples = {"a": [], "b": []}
    clock, end = time.perf_counter_ns, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for name, sess in (("a", a), ("b", b)):
            for _ in range(50):
                t0 = clock()
                sess.run(None, feed)
                samples[name].append(clock() - t0)
    return statistics.median(samples["b"]) / statistics.median(samples["a"])


def bench_ab(n: int, rounds: int, seconds: float, tmp: Path):
    runs = repeats("ab", n, rounds, seconds, tmp)
    truth = reference_ratio(tmp / "ab")
    found, errors = 0, []
    for a, b in runs:
        relation, ratio = decide.latency_relation(a, b, floor=0.02)
        found += relation == "slower"
        errors.append(abs(ratio.estimate / truth - 1))
    print(f"A/B ({n} repeats, {rounds} rounds, load switched between rounds): reference ratio {truth:.3f}; "
          f"detected as slower {found}/{n} = {100 * found / n:.0f}% (target >= 95%); reported ratio error "
          f"median {100 * statistics.median(errors):.1f}%, max {100 * max(errors):.1f}% (target within 2%)")


def bench_fidelity(rounds: int, seconds: float, tmp: Path):
    from bench_core import tight_loop_median_ms

    folder = lab(tmp / "fid", 10, "b", 1, seconds)
    store = Store(f"sqlite:///{folder / 'store.sqlite'}")
    harness_rounds, loop_rounds = [], []
    model = REPO / "models" / "digits_cnn.onnx"
    (folder / "models" / "cnn.yaml").write_text("name: cnn\nbase: " + str(model) + "\nvariants:\n"
                                                "  - {name: fp32, technique: fp32}\n")
    for r in range(rounds):
        manifests = [variant_build.load_manifest(folder / "models" / "cnn.yaml")]
        s = BenchSession(Inventory(folder / "devices"), store, manifests, cache=folder / "cache", order_seed=r)
        m = s.measure("local", manifests[0], manifests[0].recipe("fp32"))
        s.close()
        harness_rounds.append(m.latency.p50_ms)
        loop_rounds.append(tight_loop_median_ms(model, seconds))
    h, t = statistics.median(harness_rounds), statistics.median(loop_rounds)
    print(f"fidelity ({rounds} interleaved rounds): harness median {1e3 * h:.2f} us vs independent tight loop "
          f"{1e3 * t:.2f} us: {100 * (h / t - 1):+.2f}% (target within 1%)")


def bench_cost():
    def wall(extra):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "suites/", "--device", "local", "-q", "-p",
                        "no:cacheprovider", "--report", "", "--store", "sqlite:///" + tempfile.mktemp(suffix=".sqlite"),
                        *extra], cwd=REPO, capture_output=True, check=False, timeout=1800)
        return time.perf_counter() - t
    one, three = wall(["--rounds", "1"]), wall([])
    print(f"cost: pytest suites/ --device local: 1 round {one:.1f} s, 3 rounds (default) {three:.1f} s "
          f"= {three / one:.2f}x")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", default=["aa", "ab", "fidelity", "cost"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.6, help="timed loop per measurement (split over rounds)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "benchmarks"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "aa" in args.which:
            bench_aa(args.repeats, args.rounds, args.seconds, tmp)
        if "ab" in args.which:
            bench_ab(args.repeats, args.rounds, args.seconds, tmp)
        if "fidelity" in args.which:
            bench_fidelity(args.rounds, args.seconds, tmp)
        if "cost" in args.which:
            bench_cost()
    return 0


if __name__ == "__main__":
    sys.exit(main())
