"""Exports stream: rows are written while the store is still being read, samples only when
asked for, and every format reads back to what the store holds."""
import csv
import io
import json

import pandas as pd
import pytest

from harness import store as store_mod
from harness.cli import main
from harness.export import export
from harness.store import Store
from fake_measurements import fake_measurement

ROWS = 1000


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    """ROWS measurements in two runs (small samples: the point is the row count)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('export') / 'h.sqlite'}"
    store = Store(url)
    for run in range(2):
        run_id = store.start_run(tag=f"night-{run}")
        for i in range(ROWS // 2):
            store.save(fake_measurement(run_id=run_id, variant=f"v{i}", n=20, seed=i))
    yield store
    store.close()


class Watcher:
    """A text or binary sink that remembers how many measurements the store had decoded when
    the first measurement reached it."""

    def __init__(self, decoded, marker):
        self.decoded, self.marker = decoded, marker
        self.at_first_row = None
        self.parts = []

    def write(self, data):
        if self.at_first_row is None and self.marker in (data if isinstance(data, str) else str(len(data))):
            self.at_first_row = self.decoded[0]
        self.parts.append(data)
        return len(data)

    # enough of a binary file for pyarrow's ParquetWriter
    closed = False

    def flush(self):
        pass

    def close(self):
        self.closed = True

    def tell(self):
        return sum(len(p) for p in self.parts)

    def seekable(self):
        return False

    def writable(self):
        return True


@pytest.fixture
def decoded(monkeypatch):
    """A counter of the measurements the store has turned into objects so far."""
    count = [0]
    real = store_mod.Measurement.from_dict.__func__

    def counting(cls, d):
        count[0] += 1
        return real(cls, d)

    monkeypatch.setattr(store_mod.Measurement, "from_dict", classmethod(counting))
    return count


@pytest.mark.parametrize("fmt, marker", [("csv", "digits-cnn/v0"), ("json", '"variant": "v0"')])
def test_text_exports_write_rows_while_reading(big_store, decoded, fmt, marker):
    sink = Watcher(decoded, marker)
    assert export(big_store, sink, fmt, samples=True) == ROWS
    # a first row written after one fetched batch, not after the whole store was read
    assert sink.at_first_row is not None and sink.at_first_row <= 200 < ROWS
    assert decoded[0] == ROWS
    text = "".join(sink.parts)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == ROWS and [int(x) for x in rows[0]["samples_ns"].split()] == \
            big_store.measurements(samples=True)[0].samples_ns
    else:
        doc = json.loads(text)
        assert [r["tag"] for r in doc["runs"]] == ["night-0", "night-1"] and len(doc["measurements"]) == ROWS
        assert doc["measurements"][0]["samples_ns"] == fake_measurement(variant="v0", n=20, seed=0).samples_ns


def test_parquet_export_reads_back_with_pandas(big_store, tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "all.parquet"
    assert export(big_store, str(path), "parquet", samples=True) == ROWS
    frame = pd.read_parquet(path)
    expected = big_store.dataframe()
    assert list(frame["id"]) == list(expected["id"])
    assert frame["p50_ms"].tolist() == expected["p50_ms"].tolist()
    assert list(frame["samples_ns"].iloc[3]) == big_store.measurements()[3].samples_ns


def test_parquet_interleaves_reading_and_writing(big_store, decoded, tmp_path):
    pytest.importorskip("pyarrow")
    from harness.export import write_parquet

    seen = []

    class Sink(Watcher):
        def write(self, data):
            seen.append(decoded[0])
            return super().write(data)

    write_parquet(Sink(decoded, ""), big_store.iter_measurements(samples=False), samples=False, batch=300)
    # bytes reached the sink while rows were still being read
    assert any(0 < n < ROWS for n in seen)


def test_samples_are_not_decoded_unless_asked(big_store, monkeypatch):
    from harness import samples

    def refuse(blob):
        raise AssertionError("samples decoded for an export without --samples")

    monkeypatch.setattr(samples, "decode", refuse)
    sink = io.StringIO()
    assert export(big_store, sink, "json") == ROWS
    assert all("samples_ns" not in m for m in json.loads(sink.getvalue())["measurements"])
    sink = io.StringIO()
    export(big_store, sink, "csv")
    assert "samples_ns" not in sink.getvalue().splitlines()[0]


def test_cli_export_all_and_errors(big_store, tmp_path, capsys):
    out = tmp_path / "e" / "all.csv"
    assert main(["export", "all", "--store", big_store.url, "--format", "csv", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == ROWS and not (tmp_path / "e" / "all.csv.partial").exists()
    assert main(["export", "all", "--store", big_store.url, "--format", "parquet"]) == 2
    assert "--out" in capsys.readouterr().err


def test_an_export_that_fails_leaves_no_file(big_store, tmp_path, monkeypatch):
    from harness import export as export_mod

    calls = [0]
    real = export_mod.measurement_row

    def breaks_midway(m):
        calls[0] += 1
        if calls[0] > 300:
            raise RuntimeError("the store went away")
        return real(m)

    monkeypatch.setattr(export_mod, "measurement_row", breaks_midway)
    out = tmp_path / "all.csv"
    with pytest.raises(RuntimeError, match="went away"):
        main(["export", "all", "--store", big_store.url, "--format", "csv", "--out", str(out)])
    assert list(tmp_path.iterdir()) == []  # neither the file nor its partial
