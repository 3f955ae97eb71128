"""`harness runs | compare | export | devices status | report --run TAG` on a store of fakes."""
import csv
import io
import json

import pytest

from harness.cli import main
from harness.lease import LeaseManager
from harness.store import Store
from fake_measurements import fake_measurement


@pytest.fixture
def store_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    store = Store(url)
    base = store.start_run(tag="good")
    store.save(fake_measurement(run_id=base, seed=1))
    store.save(fake_measurement(run_id=base, variant="int8", seed=2))
    store.finish_run(base)
    new = store.start_run(tag="tonight")
    store.save(fake_measurement(run_id=new, seed=3, median_ms=1.2))    # 20% slower
    store.save(fake_measurement(run_id=new, variant="int8", seed=4))     # unchanged
    store.finish_run(new)
    store.close()
    return url


def test_runs(store_url, capsys):
    assert main(["runs", "--store", store_url]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "tonight" in out and "local" in out
    assert main(["runs", "--store", store_url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["measurements"] for r in rows] == [2, 2]


def test_compare_flags_the_slow_variant(store_url, capsys):
    assert main(["compare", "good", "tonight", "--store", store_url, "--compare-fail", "p50:10%", "--save"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION: local digits-cnn/fp32 p50" in out and "ok: local digits-cnn/int8 p50" in out
    assert Store(store_url).comparisons()[0]["regressions"] == 1
    assert main(["compare", "good", "tonight", "--store", store_url, "--compare-fail", "p50:30%"]) == 0


def test_compare_bad_expression_names_it(store_url, capsys):
    assert main(["compare", "good", "latest", "--store", store_url, "--compare-fail", "speed:5%"]) == 2
    assert "'speed:5%'" in capsys.readouterr().err


def test_export_json_and_csv(store_url, tmp_path, capsys):
    assert main(["export", "good", "--store", store_url, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["variant"] for r in rows] == ["fp32", "int8"] and float(rows[0]["p50_ms"]) > 0
    out = tmp_path / "run.json"
    assert main(["export", "latest", "--store", store_url, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["run"]["tag"] == "tonight" and len(doc["measurements"]) == 2
    assert "samples_ns" not in doc["measurements"][0]  # samples only when asked for
    assert main(["export", "latest", "--store", store_url, "--out", str(out), "--samples"]) == 0
    assert len(json.loads(out.read_text())["measurements"][0]["samples_ns"]) == 200  # fake_measurement's default n


def test_devices_status(store_url, capsys):
    assert main(["devices", "status", "--store", store_url]) == 0
    assert "no board is leased" in capsys.readouterr().out
    lease = LeaseManager(Store(store_url), ttl_s=60, holder="ci-7:42", run_id="abc123")
    lease.acquire("jetson")
    try:
        assert main(["devices", "status", "--store", store_url]) == 0
        out = capsys.readouterr().out
        assert "jetson" in out and "ci-7:42" in out and "run abc123" in out and "expires in" in out
    finally:
        lease.release_all()


def test_report_of_a_tagged_run(store_url, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", store_url, "--out", str(out), "--run", "tonight"]) == 0
    assert out.is_file() and "Trend: median latency" in out.read_text()
