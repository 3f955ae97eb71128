"""`--device WORD`: a name, a tag (every device carrying it) or a glob; near misses are answered."""
import pytest

from harness.errors import ConfigError
from harness.inventory import Inventory


def inventory(tmp_path):
    for name, tags in (("rpi5-a", "[rpi, arm]"), ("rpi5-b", "[rpi, arm]"), ("orin", "[jetson, arm]")):
        (tmp_path / f"{name}.yaml").write_text(f"kind: local\ntags: {tags}\n")
    return Inventory(tmp_path)


def test_a_name_a_tag_and_a_glob(tmp_path):
    inv = inventory(tmp_path)
    assert inv.select("orin") == ["orin"]
    assert inv.select("rpi") == ["rpi5-a", "rpi5-b"]
    assert inv.select("arm") == ["orin", "rpi5-a", "rpi5-b"]
    assert inv.select("rpi5-*") == ["rpi5-a", "rpi5-b"]
    assert inv.select("local") == ["local"]


def test_a_near_miss_names_what_exists_and_guesses(tmp_path):
    with pytest.raises(ConfigError) as info:
        inventory(tmp_path).select("jetsn")
    text = str(info.value)
    assert "did you mean 'jetson'?" in text and "tags arm, jetson, rpi" in text and "orin" in text


def test_the_demo_inventory_answers_the_readme_commands(repo):
    inv = Inventory(repo / "devices")
    assert inv.select("jetson") == ["jetson-orin-gpu", "jetson-orin-nano"]   # every Jetson in the demo inventory
    assert "qemu-m3" in inv.select("mcu")


def test_a_word_selects_every_device_whose_name_or_tags_match(tmp_path):
    (tmp_path / "jetson-nano.yaml").write_text("kind: local\n")          # no tags: found by its name
    (tmp_path / "rpi5ish.yaml").write_text("kind: local\n")              # 'rpi5' is no whole part of it
    inv = inventory(tmp_path)
    assert inv.select("jetson") == ["jetson-nano", "orin"]              # a name's first part, and a tag
    assert inv.select("rpi5") == ["rpi5-a", "rpi5-b"]
    assert inv.select("jetson-nano") == ["jetson-nano"]                 # a full name: that device alone


def test_the_demo_inventory_selects_families_by_name(repo):
    inv = Inventory(repo / "devices")
    assert inv.select("nucleo") == ["nucleo-l4r5zi", "nucleo-l4r5zi-prebuilt"]
    assert inv.select("qemu") == ["qemu-m3", "qemu-m4"]
