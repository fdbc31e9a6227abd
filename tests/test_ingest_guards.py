"""Bad data stays out: dates and instants outside the calendar are refused at the door (bulk
CSV and Parquet, change batches) naming file, row and column; a Parquet file that would
decode to far more than its size is refused from its metadata, before it is read.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segments.engine.errors import IngestError
from segments.engine.model import limits
from segments.engine.storage import ingest_read as R


@pytest.mark.parametrize("text", ["0000-06-15", "0000-02-29", "0999-12-31", "9999-12-31", "9999-01-01"])
def test_csv_dates_outside_the_calendar(tmp_path, text):
    (tmp_path / "customers.csv").write_text(f"customer_id,birth_date\n1,1980-01-01\n2,{text}\n")
    with pytest.raises(IngestError) as e:
        R.read_table_file(tmp_path / "customers.csv", "customers")
    assert (e.value.file, e.value.row, e.value.column) == ("customers.csv", 2, "birth_date")
    assert text in e.value.message and limits.CALENDAR in e.value.message


def test_calendar_edges_are_accepted(tmp_path):
    (tmp_path / "customers.csv").write_text(
        f"customer_id,birth_date\n1,{limits.MIN_DATE}\n2,{limits.MAX_DATE}\n")
    t = R.read_table_file(tmp_path / "customers.csv", "customers")
    assert t.column("birth_date").to_pylist() == [limits.MIN_DATE, limits.MAX_DATE]


def test_parquet_dates_and_instants_outside_the_calendar(tmp_path):
    pq.write_table(pa.table({"customer_id": pa.array([1, 2], pa.int64()),
                             "opened_on": pa.array([dt.date(2020, 1, 1)] * 2),
                             "due_on": pa.array([0, -719_362], pa.int32()).cast(pa.date32()),
                             "balance": pa.array([1, 1], pa.int64()), "status": ["open", "open"]}),
                   tmp_path / "laybys.parquet")
    with pytest.raises(IngestError) as e:
        R.read_table_file(tmp_path / "laybys.parquet", "laybys")
    assert (e.value.row, e.value.column) == (2, "due_on") and "0000-06-15" in e.value.message
    ts = pa.array([0, 253_402_300_000 * 1_000_000], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"customer_id": pa.array([1, 1], pa.int64()), "purchased_at": ts,
                             "amount": pa.array([1, 1], pa.int64())}), tmp_path / "purchases.parquet")
    with pytest.raises(IngestError) as e:
        R.read_table_file(tmp_path / "purchases.parquet", "purchases")
    assert (e.value.row, e.value.column) == (2, "purchased_at") and "(UTC)" in e.value.message


def test_change_rows_outside_the_calendar_name_table_row_and_column():
    with pytest.raises(IngestError) as e:
        R.rows_table("customers", [{"customer_id": 1}, {"customer_id": 2, "wedding_date": "0000-01-01"}])
    assert str(e.value).startswith("customers, row 2, column wedding_date: date 0000-01-01")
    with pytest.raises(IngestError) as e:
        R.rows_table("visits", [{"customer_id": 1, "status": "booked",
                                 "starts_at": dt.datetime(9999, 12, 31, 12, tzinfo=dt.timezone.utc)}])
    assert (e.value.row, e.value.column) == (1, "starts_at")


def _bomb(path, rows: int, chunk: int = 1 << 18):
    part = pa.table({"customer_id": pa.array(np.full(chunk, 7, np.int64))})
    with pq.ParquetWriter(path, part.schema, compression="zstd") as w:
        for _ in range(rows // chunk):
            w.write_table(part, row_group_size=chunk)


def test_a_parquet_file_claiming_far_more_than_its_size_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "customers.parquet"
    _bomb(path, 1 << 22)                               # 32 MiB of int64 in a few kB
    monkeypatch.setattr(R, "PARQUET_MIN_BUDGET", 4 << 20)

    def never(*a, **k):
        raise AssertionError("the file was read")
    monkeypatch.setattr(R.pq, "read_table", never)
    with pytest.raises(IngestError) as e:
        R.read_table_file(path, "customers")
    assert e.value.file == "customers.parquet" and "would decode to" in e.value.message
    assert path.stat().st_size < 100_000


def test_a_dictionary_bomb_is_measured_before_it_is_decoded(tmp_path, monkeypatch):
    n = 1 << 20
    big = pa.array(["x" * 1000]).dictionary_encode()
    email = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), big.dictionary)
    pq.write_table(pa.table({"customer_id": pa.array(np.arange(n, dtype=np.int64)), "email": email}),
                   tmp_path / "customers.parquet", compression="zstd")
    monkeypatch.setattr(R, "PARQUET_MIN_BUDGET", 16 << 20)
    monkeypatch.setattr(R, "PARQUET_MAX_RATIO", 4)
    with pytest.raises(IngestError) as e:
        R.read_table_file(tmp_path / "customers.parquet", "customers")
    assert "text would decode to" in e.value.message


def test_ordinary_files_pass_the_size_checks(tmp_path):
    from segments.bench.generate import generate
    generate(tmp_path, customers=2000, seed=2)
    tables = R.read_folder(tmp_path)
    assert tables["customers"].num_rows == 2000
