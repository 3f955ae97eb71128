"""Accuracy on the device: the device computes what the host computes, and compression
loses no more than the manifest allows against the fp32 base."""
import pytest

from harness import variant_build
from harness.accuracy import compare_with_host


def test_accuracy_matches_host(measure, variant, device_spec):
    m = measure()
    if m.accuracy is None:
        pytest.skip(f"{variant.model} declares no labelled dataset" if variant.host_accuracy is None
                    else f"{m.device} measured no accuracy for {variant.id}")
    if variant.host_accuracy is None:
        pytest.skip("this host cannot run the variant to compare (no interpreter for its format)")
    # Different kernels (another CPU's int8 rounding, XNNPACK vs the built-in kernels) may
    # flip a borderline sample: one sample plus the device's stated tolerance is allowed.
    compared = compare_with_host(m.accuracy, variant.host_accuracy, m.accuracy_n,
                                 device_spec.settings["accuracy_tolerance_pt"])
    assert compared.agrees, f"{variant.id} on {m.device}: {compared.describe()}"


def test_accuracy_drop_within_budget(measure, manifest, variant, harness_session):
    if manifest.max_accuracy_drop is None or manifest.dataset is None:
        pytest.skip(f"{manifest.name} sets no max_accuracy_drop")
    m = measure()
    if m.accuracy is None:
        pytest.skip(f"{m.device} measured no accuracy for {variant.id}")
    reference = variant_build.host_accuracy(manifest.base, variant_build.dataset_file(manifest, harness_session.cache), manifest.inputs)
    drop = reference - m.accuracy
    assert drop <= manifest.max_accuracy_drop, (
        f"{variant.id} loses {100 * drop:.2f} points against the fp32 base "
        f"({100 * m.accuracy:.2f}% vs {100 * reference:.2f}%), budget {100 * manifest.max_accuracy_drop:.1f}")
