"""Accuracy on a device against the host's: one sample of the evaluation set plus the
device's stated `settings.accuracy_tolerance_pt` (harness/accuracy.py)."""
import pytest

from harness.accuracy import compare_with_host
from harness.errors import ConfigError
from harness.inventory import load_device_file


def test_one_flipped_sample_agrees_by_default():
    # the int8-static digits CNN: 350/360 on an aarch64 board, 351/360 on x86
    c = compare_with_host(350 / 360, 351 / 360, 360, 0.5)
    assert c.agrees
    assert c.allowed_pt == pytest.approx(100 / 360 + 0.5)
    text = c.describe()
    assert "97.22% (350/360)" in text and "97.50% (351/360)" in text and "-0.28 points" in text
    assert "within the tolerance of 0.78 points (1 sample of 360 + accuracy_tolerance_pt 0.5)" in text


def test_beyond_the_tolerance_fails_with_both_figures():
    # 3 samples of 360 = 0.83 points > 0.28 + 0.5
    c = compare_with_host(348 / 360, 351 / 360, 360, 0.5)
    assert not c.agrees
    assert "device top-1 96.67% (348/360) vs host 97.50% (351/360): -0.83 points, beyond" in c.describe()
    # a device that states a wider tolerance accepts it
    assert compare_with_host(348 / 360, 351 / 360, 360, 1.0).agrees


def test_exactly_one_sample_with_no_extra_tolerance():
    assert compare_with_host(350 / 360, 351 / 360, 360, 0.0).agrees
    assert not compare_with_host(349 / 360, 351 / 360, 360, 0.0).agrees


def test_unknown_sample_count_gives_no_one_sample_allowance():
    c = compare_with_host(0.970, 0.975, None, 0.5)
    assert c.allowed_pt == pytest.approx(0.5) and c.agrees
    assert not compare_with_host(0.970, 0.976, None, 0.5).agrees
    assert "1 sample" not in c.describe()


def test_negative_tolerance_is_refused():
    with pytest.raises(ValueError, match="accuracy_tolerance_pt: expected a number >= 0"):
        compare_with_host(0.9, 0.9, 100, -1)


def test_the_device_yaml_states_the_tolerance(tmp_path):
    path = tmp_path / "pi.yaml"
    path.write_text("kind: local\n")
    assert load_device_file(path).settings["accuracy_tolerance_pt"] == 0.5
    path.write_text("kind: local\nsettings: {accuracy_tolerance_pt: 1.5}\n")
    assert load_device_file(path).settings["accuracy_tolerance_pt"] == 1.5
    for bad, words in (("-1", "settings.accuracy_tolerance_pt"), ("lots", "settings.accuracy_tolerance_pt")):
        path.write_text(f"kind: local\nsettings: {{accuracy_tolerance_pt: {bad}}}\n")
        with pytest.raises(ConfigError, match=words) as info:
            load_device_file(path)
        assert "pi.yaml" in str(info.value)
