"""The terminal summary's rows, without a pytest run: a variant measured again is one row."""
from types import SimpleNamespace

from harness.pytestplugin.terminal import table_measurements
from tests.fake_measurements import fake_measurement


def test_a_remeasured_variant_is_one_row_the_newest():
    invalid = fake_measurement(variant="fp32", median_ms=2.0)
    again = fake_measurement(variant="fp32", median_ms=1.0)
    other = fake_measurement(variant="int8", median_ms=0.5)
    threads4 = fake_measurement(variant="fp32", median_ms=0.8)
    threads4.settings = {"threads": 4}                       # other settings: a row of its own
    session = SimpleNamespace(measured=[invalid, other, again, threads4], run_id="r1", store=None)
    rows = table_measurements(SimpleNamespace(existing_bench_session=session))
    assert len(rows) == 3
    assert again in rows and invalid not in rows and other in rows and threads4 in rows
