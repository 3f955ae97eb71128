"""Searches on the demo MLP on the `local` device: real builds, real runner subprocesses,
a real optuna study in the store's SQLite (or a real PostgreSQL), real kill -9."""
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labci_postgres import postgres_url  # noqa: F401  (fixture)

optuna = pytest.importorskip("optuna", reason="the search extra: pip install optuna")

from harness import variant_build  # noqa: E402
from harness.inventory import Inventory  # noqa: E402
from harness.search import study as study_mod  # noqa: E402
from harness.search.cli import execute  # noqa: E402
from harness.search.space import load_search  # noqa: E402
from harness.session import BenchSession  # noqa: E402
from harness.store import Store  # noqa: E402
from inner_pytest import inner_env, pytest_argv, run_inner
from paths import ROOT

BOARDS = ROOT / "tests" / "boards"   # local (a busy host is no invalid measurement) and qemu-m3
FAST = {"min_duration_s": 0.02, "warmup": 2}
# fixed point at 8 bits fits 4 KB; fp32 or fp16 layers do not: the budget sorts them before the device
SEARCH = """search:
  objectives: [accuracy, p50]
  budgets: ["stored size < 4 KB"]
  seed: 7
  population: 4
  techniques:
    fixed-point:
      layer_bits: {per_layer: true, choices: [4, 8]}
      activation_bits: 32
    mixed-precision:
      layer_precision: {per_layer: true, choices: [fp16, int8]}
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("search-cache")     # builds shared by this module's searches


def write_manifest(folder: Path, search: str = SEARCH) -> Path:
    path = folder / "mlp.yaml"
    path.write_text(f"name: mlp\nbase: {ROOT / 'models' / 'digits_mlp.onnx'}\ndataset: digits\n"
                    f"variants:\n  - {{name: fp32, technique: fp32}}\n{search}")
    return path


def search_measurements(store: Store, study: str) -> dict:
    """trial number -> [measurements], of one study."""
    out = {}
    for m in store.measurements():
        tag = m.settings.get("search")
        if tag and tag["study"] == study:
            out.setdefault(tag["trial"], []).append(m)
    return out


def load(url: str, study: str):
    return optuna.load_study(study_name=study, storage=study_mod.open_storage(url))


def cli(*args) -> list:
    return [sys.executable, "-m", "harness.cli", "--devices-dir", str(BOARDS), "search", *args]


def test_trials_are_measurements_and_a_budget_keeps_trials_off_the_device(tmp_path, cache):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    result = execute(write_manifest(tmp_path), "local", devices_dir=BOARDS, trials=6, store_url=url, study="s1", cache=cache,
                     overrides=FAST, with_variants=True, log=lambda line: None)
    study = load(url, "s1")
    trials = study.get_trials()
    assert len(trials) == 6
    by_trial = search_measurements(Store(url), "s1")
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    excluded = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert complete and excluded, "seed 7 gives both kinds; a new optuna may draw differently"
    for t in complete:
        (m,) = by_trial[t.number]
        assert m.id == t.user_attrs["measurement_id"] and m.run_id == result.run_id
        assert m.settings["search"] == {"study": "s1", "trial": t.number, "attempt": 0}
        assert m.variant == f"s1-t{t.number:04d}" and m.technique == t.user_attrs["technique"]
        assert m.storage_bytes < 4096 and m.latency.n > 0 and m.accuracy is not None
        assert list(t.values) == [m.accuracy, m.latency.p50_ms]
        assert t.constraints == {"stored size < 4 KB": m.storage_bytes - 4096.0}
    for t in excluded:
        assert t.number not in by_trial                         # never sent to the device
        assert t.user_attrs["before_device"]["stored_size"] >= 4096
        assert t.user_attrs["excluded"] == ["before the device: stored size < 4 KB"]
        assert t.constraints["stored size < 4 KB"] >= 0
    assert Store(url).run(result.run_id)["tag"] == "search:s1"
    assert {t["number"] for t in result.summary["trials"]} == set(range(6))
    (fp32,) = result.summary["handwritten"]          # measured beside, outside the 4 KB budget
    assert (fp32["name"], fp32["feasible"], fp32["reasons"]) == ("fp32", False, ["stored size < 4 KB"])


class VerdictSession:
    """The real BenchSession, with the validity verdict the lead's BenchSession will give stamped on
    its first ``invalid_first`` measurements (the numbers stay real)."""

    def __init__(self, session, invalid_first: int):
        self.session, self.left = session, invalid_first

    def variant(self, manifest, recipe):
        return self.session.variant(manifest, recipe)

    def skip_reason(self, device, recipe):
        return self.session.skip_reason(device, recipe)

    def measure(self, device, manifest, recipe, **settings):
        m = self.session.measure(device, manifest, recipe, **settings)
        if self.left > 0:
            self.left -= 1
            m.validity = {"verdict": "invalid", "reasons": ["CPU frequency changed during the run"]}
        return m


@pytest.mark.parametrize("invalid_first,remeasure", [(1, 2), (3, 2)])
def test_an_invalid_measurement_is_remeasured_and_never_told_as_a_number(tmp_path, cache, invalid_first, remeasure):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    manifest = variant_build.load_manifest(write_manifest(tmp_path, SEARCH.replace("[fp16, int8]", "[int8]")
                                                .replace("choices: [4, 8]", "choices: [8]")))
    spec = load_search(manifest)
    store = Store(url)
    session = BenchSession(Inventory(BOARDS), store, [manifest], cache=cache, overrides=FAST)
    try:
        study_mod.run_search(spec, manifest, VerdictSession(session, invalid_first), "local", trials=1,
                             storage_url=url, study_name="v", remeasure=remeasure)
    finally:
        session.close()
    (trial,) = load(url, "v").get_trials()
    measured = search_measurements(store, "v")[0]
    assert [m.settings["search"]["attempt"] for m in measured] == list(range(min(invalid_first + 1, remeasure + 1)))
    if invalid_first <= remeasure:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.user_attrs["measurement_id"] == measured[-1].id
        assert trial.values == [measured[-1].accuracy, measured[-1].latency.p50_ms]
        assert "CPU frequency changed" in trial.user_attrs["remeasured"][0]
    else:
        assert trial.state == optuna.trial.TrialState.FAIL and trial.values is None
        assert "every measurement invalid (3)" in trial.user_attrs["failed"]


def test_a_search_killed_between_trials_resumes_with_nothing_lost(tmp_path, cache):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    manifest = write_manifest(tmp_path)
    args = cli(str(manifest), "--device", "local", "--trials", "5", "--study", "k", "--store", url,
               "--cache", str(cache), "--min-duration", "0.02", "--warmup", "2")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=inner_env(), cwd=tmp_path)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("trial 1:"):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen) + proc.stderr.read()
    before = load(url, "k").get_trials()
    done_before = [t for t in before if t.state.is_finished()]
    assert len(done_before) >= 2
    page = tmp_path / "search.html"
    again = subprocess.run(args + ["--report", str(page)], capture_output=True, text=True, env=inner_env(), cwd=tmp_path,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    html = page.read_text()
    assert "id='search-front'" in html and "found front" in html and "Hypervolume per trial" in html
    after = load(url, "k").get_trials()
    states = [t.state for t in after]
    assert optuna.trial.TrialState.RUNNING not in states
    finished = [t for t in after if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 5
    for t in done_before:                                          # kept as they were
        assert after[t.number].state == t.state and after[t.number].values == t.values
    by_trial = search_measurements(Store(url), "k")
    for t in finished:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.user_attrs["measurement_id"] in [m.id for m in by_trial[t.number]]
    assert {line.split(":")[0] for line in again.stdout.splitlines() if line.startswith("trial ")} <= {
        f"trial {n}" for n in range(len(done_before), len(after))}   # only the missing trials ran


def test_a_trial_left_running_by_a_dead_worker_is_failed_and_its_configuration_retried(tmp_path, cache):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    manifest = variant_build.load_manifest(write_manifest(tmp_path))
    spec = load_search(manifest)
    study = optuna.create_study(study_name="d", storage=study_mod.open_storage(url), directions=spec.directions)
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = study.ask()
    orphan.set_user_attr("worker", f"{platform.node()}:{dead.pid}")
    spec.sample(orphan)                                            # its configuration, never measured
    alive = study.ask()
    alive.set_user_attr("worker", f"{platform.node()}:{os.getpid()}")   # a live worker's: untouched
    session = BenchSession(Inventory(BOARDS), Store(url), [manifest], cache=cache, overrides=FAST)
    try:
        study_mod.run_search(spec, manifest, session, "local", trials=1, storage_url=url, study_name="d")
    finally:
        session.close()
    trials = load(url, "d").get_trials()
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert trials[1].state == optuna.trial.TrialState.RUNNING
    retry = trials[2]
    assert retry.user_attrs["retry_of"] == 0 and retry.params == trials[0].params
    assert retry.state.is_finished()


def test_two_workers_share_one_study_on_postgresql(tmp_path, cache, postgres_url):  # noqa: F811
    manifest = write_manifest(tmp_path)
    study = f"pg{os.getpid()}"
    args = cli(str(manifest), "--device", "local", "--trials", "4", "--worker-trials", "2", "--study", study,
               "--store", postgres_url, "--cache", str(cache), "--min-duration", "0.02", "--warmup", "2")
    workers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=inner_env(),
                                cwd=tmp_path) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
    trials = load(postgres_url, study).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.is_finished() for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2      # two trials each (--worker-trials 2)
    by_trial = search_measurements(Store(postgres_url), study)
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            (m,) = by_trial[t.number]
            assert m.id == t.user_attrs["measurement_id"]
    assert len({m.run_id for ms in by_trial.values() for m in ms}) <= 2   # one run per worker


def test_pytest_entry_runs_the_search_as_a_test(tmp_path, cache):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    (tmp_path / "tests").mkdir()
    run = run_inner(pytest_argv(
        tmp_path / "tests", "-p", "harness.search.pytest_entry", "--search", write_manifest(tmp_path),
        "--device", "local", "--search-trials", "2", "--search-study", "pt", "--store", url,
        "--min-duration", "0.02", "--devices-dir", BOARDS, "--models-dir", ROOT / "models", "--report", "", "-rA"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "PASSED" in run.stdout and "search[local]" in run.stdout and "front (" in run.stdout
    assert len(load(url, "pt").get_trials()) == 2


def test_cli_names_a_manifest_without_a_search_section(tmp_path, capsys):
    from harness.cli import main

    path = tmp_path / "plain.yaml"
    path.write_text(f"name: p\nbase: {ROOT / 'models' / 'digits_mlp.onnx'}\nvariants: []\n")
    assert main(["search", str(path), "--device", "local", "--store", f"sqlite:///{tmp_path / 'h.sqlite'}"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "search" in err and "docs/search.md" in err


def test_a_device_that_cannot_run_onnx_variants_is_refused_before_any_trial(tmp_path, capsys):
    from harness.cli import main

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    code = main(["--devices-dir", str(BOARDS), "search", str(write_manifest(tmp_path)), "--device",
                 "qemu-m3", "--store", url, "--study", "m"])
    assert code == 2
    err = capsys.readouterr().err
    assert "search on qemu-m3" in err and "onnxruntime" in err
    assert not [t for t in optuna.get_all_study_summaries(study_mod.open_storage(url))]
