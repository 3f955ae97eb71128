"""Property: no name a user writes can run a command, escape a directory or crash the
harness (docs/hostile-inputs.md).

Hypothesis generates hostile names (shell and make metacharacters, $(), backticks,
quotes, newlines, `..`, absolute paths, unicode, very long ones) and pushes each through
every entry point that takes a name: a manifest's name, a variant's name, a model file's
name, a device's name (its YAML file's stem, and --device) and a run tag, on the `local`
device and on a real SSH test board. For every example:
  - a canary command embedded in the names never runs (its file never appears);
  - no file appears outside the example's own work directories (models, devices, cache,
    store) on the host, nor outside the harness work directory on the board;
  - either the name works end to end (built, measured, stored under that name), or the
    error is a ConfigError naming the field the name was given in.
"""
from __future__ import annotations

import itertools
import os
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness import variant_build
from harness.errors import ConfigError, ModelError
from harness.inventory import Inventory
from harness.session import BenchSession
from harness.store import Store
from onnx_models import single_op_model

CANARY = Path("/tmp") / f"hostile-canary-{uuid.uuid4().hex[:12]}"
TOUCH = f"touch {CANARY}"
FRAGMENTS = [f"$({TOUCH})", f"`{TOUCH}`", f"; {TOUCH};", f"$(shell {TOUCH})", f"| {TOUCH}", f"&& {TOUCH}",
             "'", '"', "\n", "\r", "\t", " ", "..", "../", "../../", "/", "/tmp/x/ESCAPED", "~", "$HOME", "${PWD}",
             "%", "$$", "\\", "*", "?", "[a]", "#", "=", ":", ",", "<", ">", "!", "-", ".", "_", "+",
             "é", "名", "\u202e", "\u00a0", "\ufeff", "NUL\x00", "a", "b7", "C"]
hostile_names = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map("".join),
    st.text(min_size=1, max_size=40),
    st.text(alphabet="ab-._+9", min_size=1, max_size=12),  # near the alphabet's edges
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,40}", fullmatch=True),  # valid: the "it works" side
    st.from_regex(r"[a-z0-9][a-z0-9.-]{0,10}", fullmatch=True),
    st.integers(65, 5000).map(lambda n: "x" * n),           # very long
    st.sampled_from(["..", ".", "/etc/passwd", "/tmp/x/ESCAPED", "-rf", "--help", "a/b", "CON", " "]),
)
PROPERTY = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
QUICK = {"warmup": 0, "min_duration_s": 0.0, "min_iterations": 3}
_counter = itertools.count()


class Sandbox:
    """One example's work directories, and a watch on everything around them: the test's
    tmp folder, the current directory, /tmp/x (where an absolute name would land) and, with
    a board, the board user's home outside the harness work directory."""

    WORK = ("models", "devices", "cache")

    def __init__(self, root: Path, board=None, board_workdir=None):
        self.dir = root / f"ex{next(_counter)}"
        self.models, self.devices, self.cache = (self.dir / d for d in self.WORK)
        for d in (self.models, self.devices, self.cache):
            d.mkdir(parents=True)
        self.store_url = f"sqlite:///{self.dir / 'h.sqlite'}"
        self.root, self.board, self.board_workdir = root, board, board_workdir
        self.before = self._outside()

    def _outside(self) -> set:
        seen = {p for p in self.root.rglob("*") if not self._work(p)}
        seen |= {Path.cwd() / n for n in os.listdir(Path.cwd())}
        seen = {p for p in seen if ".benchmarks" not in p.parts}  # pytest-benchmark's, in pytester's cwd
        seen |= {p for p in (Path("/tmp/x"), CANARY) if p.exists()}
        if self.board is not None:
            work = self.board_workdir
            seen |= {p for p in self.board.home.rglob("*")
                     if not (p == work or work in p.parents or p in work.parents) and ".ssh" not in p.parts
                     and "Microsoft" not in p.parts}  # onnxruntime's own device id on first import
        return seen

    def _work(self, p: Path) -> bool:
        try:
            rel = p.relative_to(self.dir)
        except ValueError:
            return False
        return bool(rel.parts) and (rel.parts[0] in self.WORK or rel.parts[0].startswith("h.sqlite"))

    def check(self):
        assert not CANARY.exists(), "a name ran a command"
        new = self._outside() - self.before
        assert not new, f"files appeared outside the work directories: {sorted(map(str, new))[:5]}"


def _as_file_name(name: str) -> str | None:
    """`name` as a file name this file system accepts, or None."""
    if "/" in name or "\x00" in name or name in (".", "..") or len(name.encode()) > 200:
        return None
    return name


def _write_manifest(box: Sandbox, model_name: str, variant_name: str, file_name: str | None) -> Path:
    single_op_model(box.models / "base.onnx", op="Relu", shape=(1, 8))
    variants = [{"name": variant_name, "technique": "fp32"}]
    if file_name is not None:
        real = _as_file_name(file_name + ".onnx")
        if real is not None:
            shutil.copy(box.models / "base.onnx", box.models / real)
        variants.append({"name": "prebuilt", "file": file_name + ".onnx"})
    path = box.models / "m.yaml"
    path.write_text(yaml.safe_dump({"name": model_name, "base": "base.onnx", "variants": variants}))
    return path


def _device_yaml(box: Sandbox, device_name: str, text: str) -> None:
    stem = _as_file_name(device_name)
    if stem is not None and not stem.startswith("-"):
        (box.devices / f"{stem}.yaml").write_text(text)


def _works_or_names_field(box: Sandbox, model, variant, file, device, device_text: str):
    """Load and measure; returns the stored rows, or the ConfigError's field."""
    try:
        manifest = variant_build.load_manifest(_write_manifest(box, model, variant, file))
        _device_yaml(box, device, device_text)
        inventory = Inventory(box.devices)
        store = Store(box.store_url)
        session = BenchSession(inventory, store, [manifest], cache=box.cache)
        try:
            for recipe in manifest.variants:
                session.measure(device, manifest, recipe, **QUICK)
        finally:
            session.close()
        rows = store.measurements()
        store.close()
        return {(m.device, m.model, m.variant) for m in rows}
    except (ConfigError, ModelError) as exc:
        return exc


LOCAL = "kind: local\ncapabilities: {runtimes: [onnxruntime]}\n"


def _assert_outcome(result, model, variant, file, device):
    if isinstance(result, ModelError):  # a path this file system could not hold: said so, by field
        assert "variants[1] (prebuilt, file): file: model file" in str(result) and "not found" in str(result)
        assert file is not None and _as_file_name(file + ".onnx") is None, result
        return
    if isinstance(result, ConfigError):  # refused: the error names where, and which field
        allowed = {"name", "variants[0].name", "variants[1].file", "name (the file's stem)", "NAME"}
        assert result.field in allowed, result
        assert str(result).startswith(f"{result.source}: {result.field}: expected "), result
        event(f"refused at {result.field}")
        return
    expected = {(device, model, variant)} | ({(device, model, "prebuilt")} if file is not None else set())
    assert result == expected
    event("worked end to end")


@PROPERTY
@given(model=hostile_names, variant=hostile_names)
def test_manifest_and_variant_names_on_local(tmp_path, model, variant):
    box = Sandbox(tmp_path)
    result = _works_or_names_field(box, model, variant, None, "box", LOCAL)
    box.check()
    _assert_outcome(result, model, variant, None, "box")


@PROPERTY
@given(file=hostile_names)
def test_model_file_names_on_local(tmp_path, file):
    box = Sandbox(tmp_path)
    result = _works_or_names_field(box, "m", "v", file, "box", LOCAL)
    box.check()
    _assert_outcome(result, "m", "v", file, "box")


@PROPERTY
@given(device=hostile_names)
def test_device_names_on_local(tmp_path, device):
    box = Sandbox(tmp_path)
    result = _works_or_names_field(box, "m", "v", None, device, LOCAL)
    box.check()
    _assert_outcome(result, "m", "v", None, device)


@PROPERTY
@given(tag=hostile_names)
def test_run_tags(pytester, tmp_path, tag):
    box = Sandbox(tmp_path)
    single_op_model(box.models / "base.onnx", op="Relu", shape=(1, 8))
    (box.models / "m.yaml").write_text("name: m\nbase: base.onnx\nvariants: [{name: v, technique: fp32}]\n")
    try:
        config = pytester.parseconfigure("--models-dir", str(box.models), "--devices-dir", str(box.devices),
                                         "--store", box.store_url, "--run-tag", tag)
    except pytest.UsageError as exc:  # ours, or argparse's for a tag that looks like a flag
        assert "--run-tag" in str(exc), exc
        event("refused at --run-tag")
    else:
        from harness.pytestplugin.state import harness_state  # the plugin's state: its session stores the tag

        session = harness_state(config).bench_session
        run_id = session.start_run()
        assert session.store.run(run_id)["tag"] == tag
        event("worked end to end")
        session.close()
        session.store.close()
    box.check()


@PROPERTY
@given(name=hostile_names)
def test_every_name_on_an_ssh_board(ssh_lab, fast_board, tmp_path, name):
    """One name in every role at once (model, variant, file, device) on a real board."""
    workdir = fast_board.home / ".cache" / "edge-harness"
    box = Sandbox(tmp_path, board=fast_board, board_workdir=workdir)
    text = ssh_lab.yaml_text(fast_board)
    result = _works_or_names_field(box, name, name, name, name, text)
    box.check()
    _assert_outcome(result, name, name, name, name)
