"""Accuracy on the device: the device computes what the host computes, and compression
loses no more than the manifest allows against the fp32 base."""
import pytest

from harness import zoo


def test_accuracy_matches_host(measure, variant):
    m = measure()
    if m.accuracy is None:
        pytest.skip(f"{variant.model} declares no labelled dataset" if variant.host_accuracy is None
                    else f"{m.device} measured no accuracy for {variant.id}")
    if variant.host_accuracy is None:
        pytest.skip("this host cannot run the variant to compare (no interpreter for its format)")
    # Different kernels (e.g. XNNPACK vs reference int8 rounding) may flip a borderline
    # sample; more than 1% of the evaluation set means the device computes something else.
    assert abs(m.accuracy - variant.host_accuracy) <= 0.01, (
        f"device top-1 {m.accuracy:.4f} vs host {variant.host_accuracy:.4f}")


def test_accuracy_drop_within_budget(measure, manifest, variant, harness_session):
    if manifest.max_accuracy_drop is None or manifest.dataset is None:
        pytest.skip(f"{manifest.name} sets no max_accuracy_drop")
    m = measure()
    if m.accuracy is None:
        pytest.skip(f"{m.device} measured no accuracy for {variant.id}")
    reference = zoo.host_accuracy(manifest.base, zoo.dataset_file(manifest, harness_session.cache), manifest.inputs)
    drop = reference - m.accuracy
    assert drop <= manifest.max_accuracy_drop, (
        f"{variant.id} loses {100 * drop:.2f} points against the fp32 base "
        f"({100 * m.accuracy:.2f}% vs {100 * reference:.2f}%), budget {100 * manifest.max_accuracy_drop:.1f}")
