"""The store: every measurement committed at once, URLs checked, passwords never shown."""
import pytest

from harness.errors import StoreError
from harness.store import Store, redact
from fake_measurements import fake_measurement


def test_saved_rows_are_visible_to_another_connection_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    writer = Store(url)
    run_id = writer.start_run({"min_duration_s": 1.0}, tag="nightly")
    m = fake_measurement(run_id=run_id)
    writer.save(m)
    # A second process/connection (a report, a crashed run's successor) sees it already.
    reader = Store(url)
    [back] = reader.measurements(run_id)
    assert back.id == m.id and back.variant_id == "digits-cnn/fp32"
    assert back.latency == m.latency and back.samples_ns == m.samples_ns
    assert reader.runs()[0]["tag"] == "nightly" and reader.runs()[0]["finished_at"] is None
    writer.finish_run(run_id)
    assert reader.runs()[0]["finished_at"] is not None


@pytest.mark.parametrize("url, words", [
    ("definitely not a url", "expected a URL like sqlite:///"),
    ("nosuchdb://host/x", "cannot open the store"),
    ("sqlite:////proc/no/such/dir/h.sqlite", "cannot"),
])
def test_store_url_that_cannot_be_opened(url, words):
    with pytest.raises(StoreError, match=words):
        Store(url)


def test_password_never_in_errors():
    url = "postgresql+psycopg://lab:s3cret-pw@127.0.0.1:1/bench"
    assert "s3cret-pw" not in redact(url)
    with pytest.raises(StoreError) as info:
        Store(url)
    assert "s3cret-pw" not in str(info.value)
    assert "lab:***@127.0.0.1" in str(info.value)


def test_store_password_never_reaches_stored_provenance(monkeypatch):
    from harness import provenance

    monkeypatch.setattr("sys.argv", ["pytest", "suites/", "--store", "postgresql+psycopg://ci:S3cret@db/lab",
                                     "--store=postgresql+psycopg://ci:Other5ecret@db/lab", "--device", "rpi5"])
    argv = provenance.controller()["argv"]
    text = " ".join(argv)
    assert "S3cret" not in text and "Other5ecret" not in text
    assert "postgresql+psycopg://ci:***@db/lab" in argv
    assert "--store=postgresql+psycopg://ci:***@db/lab" in argv and "rpi5" in argv
