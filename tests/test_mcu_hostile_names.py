"""Names a user writes never run anything through the MCU build (issue 14, item 1).

A model file name becomes the exported model's name, the cache entry's name and a string
in the generated C; the cache directory and the project's path may hold spaces or `$`.
Hostile names (make and shell syntax, `$()`, backticks, quotes, newlines, `..`, C comment
ends, unicode, very long) are pushed through export + build: a canary command never runs,
no file appears outside the work directories, and the firmware builds."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ai_edge_litert")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness.errors import DeviceError  # noqa: E402
from harness.mcu import build as fwbuild  # noqa: E402
from harness.mcu.export import export  # noqa: E402
from paths import ROOT

MODEL = ROOT / "models" / "digits_mlp_int8.tflite"
missing = fwbuild.toolchain_missing()
pytestmark = pytest.mark.skipif(missing is not None, reason=f"firmware build: {missing}")

CANARY = "PWNED"
NASTY = [f"m$(shell touch {CANARY})n", f"`touch {CANARY}`", f"$(touch {CANARY})", f"a;touch {CANARY}",
         f"$$(shell touch {CANARY})", f"x*\\ int {CANARY}; \\*", 'q"uote\'s', "..", " lead and trail ",
         "é ü 模型", "a" * 200, "-rf", f"a\nb$(shell touch {CANARY})", "%", "m-ready\r\n", "${HOME}"]
NAMES = st.one_of(st.sampled_from(NASTY),
                  st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
                          min_size=1, max_size=80))


def tree(root: Path) -> set:
    return {p for p in root.rglob("*")}


def canaries(*roots) -> list:
    """Files the canary command `touch PWNED` would have made (in whatever directory it ran)."""
    return [p for root in roots for p in Path(root).rglob(CANARY)] + list(Path.cwd().glob(CANARY))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=NAMES)
@example(name=NASTY[0])
@example(name=NASTY[5])
def test_a_hostile_model_name_never_reaches_make(name):
    assume(len((name + ".tflite").encode()) <= 255)
    with tempfile.TemporaryDirectory(prefix="hostile ") as tmp:
        tmp = Path(tmp)
        models = tmp / "mo dels $(shell touch PWNED)"
        models.mkdir()
        path = models / f"{name}.tflite"
        shutil.copyfile(MODEL, path)
        cache = tmp / "ca che `touch PWNED`" / "mcu"
        firmware_before = tree(fwbuild.FIRMWARE)
        outside_before = tree(tmp) - {cache}
        exported = export(path)
        firmware = fwbuild.build(exported, cache)
        assert firmware.elf.is_file() and firmware.elf.resolve().is_relative_to(cache.resolve())
        assert not canaries(tmp, fwbuild.FIRMWARE, ROOT), "a command in the name ran"
        assert tree(fwbuild.FIRMWARE) == firmware_before
        new = tree(tmp) - outside_before
        assert all(p == cache.parent or p.is_relative_to(cache) for p in new), sorted(map(str, new))
        assert not any(p.is_symlink() for p in cache.rglob("*"))  # no link back into the sources


def test_a_name_closing_a_c_comment_stays_inside_it(tmp_path):
    exported = export(MODEL, name="x*/ int PWNED; /*\n\"")
    assert "PWNED;" not in exported.c_source.replace("x__int_PWNED", "")
    assert fwbuild.build(exported, tmp_path).elf.is_file()


def test_a_project_path_with_spaces_and_dollars_builds(tmp_path):
    firmware = tmp_path / "my pro$(shell touch PWNED)ject" / "firmware"
    shutil.copytree(fwbuild.FIRMWARE, firmware)
    built = fwbuild.build(export(MODEL), tmp_path / "cache dir", firmware_dir=firmware)
    assert built.elf.is_file() and built.sizes["flash_bytes"] > 0
    assert not canaries(tmp_path)


@pytest.mark.parametrize("field, value", [
    ("board", "mps2-an385 $(shell touch PWNED)"), ("cpu", "cortex-m3;id"), ("cross", "arm-none-eabi- x")])
def test_build_words_are_checked_even_without_the_yaml(tmp_path, field, value):
    with pytest.raises(DeviceError, match=rf"{field}: expected"):
        fwbuild.build(export(MODEL), tmp_path, **{field: value})
    assert not canaries(tmp_path)
