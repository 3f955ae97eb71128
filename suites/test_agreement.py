"""Output agreement: every variant computes what its base computes, within the manifest's
``min_cosine`` budget, on the same inputs (the dataset's, a user .npz or generated ones).

Agreement is computed on the host when the variant is built (harness.agreement) and
travels on the measurement, so it needs no labelled dataset and no second device run.
"""
import pytest

from harness.agreement import within


def test_outputs_agree_with_the_base(measure, manifest, variant):
    if manifest.min_cosine is None:
        pytest.skip(f"{manifest.name} sets no min_cosine")
    if variant.agreement is None:
        pytest.skip(f"{variant.id}: no host agreement for a {variant.format} variant of a "
                    f"{manifest.base.suffix[1:]} base (needs both runnable by onnxruntime)")
    m = measure()
    ok, reason = within(m.agreement, manifest.min_cosine)
    assert ok, f"{variant.id}: {reason}"
