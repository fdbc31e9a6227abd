"""engine/generate.py: determinism, layout, types, realistic shapes, integrity, CSV == Parquet."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from segments.bench import generate as gen
from segments.bench.generate.vocab import SHOPS
from segments.engine.model.schema import TABLE_NAMES, TABLES

N = 20_000
SEED = 7
ANCHOR = gen.DEFAULT_ANCHOR
ANCHOR_DAY = (ANCHOR - dt.date(1970, 1, 1)).days
LOGICAL = {"int64": pa.int64(), "int32": pa.int32(), "string": pa.string(), "date": pa.date32(),
           "timestamp": pa.timestamp("us", tz="UTC"), "bool": pa.bool_(),
           "list<string>": pa.list_(pa.string())}


# ------------------------------------------------------------------ reading back
def read_parquet(out: Path, table: str) -> pa.Table:
    """A table written as `<table>.parquet` or as a folder `<table>/part-*.parquet`."""
    if (out / table).is_dir():
        return pa.concat_tables(pq.read_table(p) for p in sorted((out / table).glob("part-*.parquet")))
    return pq.read_table(out / f"{table}.parquet")


def read_csv(path: Path, table: str) -> pa.Table:
    """Parse a generated CSV into the schema's Arrow types (tags split on `;`)."""
    types = {c.name: pa.string() if c.type == "list<string>" else LOGICAL[c.type] for c in TABLES[table]}
    t = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
        column_types=types, null_values=[""], strings_can_be_null=True,
        true_values=["true"], false_values=["false"]))
    if "tags" in t.column_names:
        t = t.set_column(t.column_names.index("tags"), "tags", pc.split_pattern(t["tags"], ";"))
    return t


def days(col) -> np.ndarray:
    """Day numbers of a date32 column (nulls dropped)."""
    return pc.drop_null(col).cast(pa.int32()).to_numpy()


def micros(col) -> np.ndarray:
    return pc.drop_null(col).cast(pa.int64()).to_numpy()


def values(col) -> set:
    return set(pc.unique(pc.drop_null(col)).to_pylist())


def share(mask_col) -> float:
    return pc.mean(pc.cast(pc.fill_null(mask_col, False), pa.float64())).as_py()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen_parquet")
    return out, gen.generate(out, seed=SEED, customers=N)


@pytest.fixture(scope="module")
def parquet_dir(generated) -> Path:
    return generated[0]


@pytest.fixture(scope="module")
def data(parquet_dir) -> dict:
    return {t: read_parquet(parquet_dir, t) for t in TABLE_NAMES}


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen_csv")
    gen.generate(out, seed=SEED, customers=N, fmt="csv")
    return out


# ------------------------------------------------------------------ API, layout, determinism
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_arguments_give_byte_identical_files(tmp_path, fmt):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    rows_a = gen.generate(a, seed=3, customers=3000, fmt=fmt)
    rows_b = gen.generate(b, seed=3, customers=3000, fmt=fmt)
    gen.generate(c, seed=4, customers=3000, fmt=fmt)
    assert rows_a == rows_b
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(f"{t}.{fmt}" for t in TABLE_NAMES)
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_returns_rows_per_table_in_expected_ranges(generated, data):
    rows = generated[1]
    assert rows == {t: data[t].num_rows for t in TABLE_NAMES}
    assert rows["customers"] == N
    assert 17 * N <= rows["purchases"] <= 23 * N
    assert 4 * N <= rows["visits"] <= 6 * N
    with_layby = len(values(data["laybys"]["customer_id"]))
    assert 0.04 * N <= with_layby <= 0.06 * N
    assert rows["laybys"] <= 2 * with_layby


def test_scales_and_anchor_constants():
    assert gen.SCALES == {"S": 100_000, "M": 1_000_000, "L": 10_000_000}
    assert gen.DEFAULT_ANCHOR == dt.date(2026, 11, 20)


def test_big_tables_are_written_as_folders_of_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "CHUNK_CUSTOMERS", 1500)
    monkeypatch.setattr(gen, "PART_ROWS", 20_000)       # purchases (~80k) become a folder
    rows = gen.generate(tmp_path, seed=1, customers=4000)
    parts = sorted(p.name for p in (tmp_path / "purchases").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert not (tmp_path / "purchases.parquet").exists()
    assert (tmp_path / "visits.parquet").is_file() and (tmp_path / "customers.parquet").is_file()
    got = {t: read_parquet(tmp_path, t) for t in TABLE_NAMES}
    assert {t: got[t].num_rows for t in TABLE_NAMES} == rows
    ids = got["customers"]["customer_id"].to_numpy()
    assert len(np.unique(ids)) == len(ids) == 4000
    assert np.isin(got["purchases"]["customer_id"].to_numpy(), ids).all()
    # Every chunk's ids span the whole id range (no chunk owns a block of ids).
    for part in parts:
        pids = pq.read_table(tmp_path / "purchases" / part)["customer_id"].to_numpy()
        assert pids.min() < 10**15 and pids.max() > 8 * 10**15


def test_rerun_replaces_earlier_output(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "PART_ROWS", 10_000)
    gen.generate(tmp_path, customers=1000)             # purchases as a folder of parquet
    gen.generate(tmp_path, customers=300, fmt="csv")   # now small, single CSV files
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{t}.csv" for t in TABLE_NAMES)


def test_progress_bar(tmp_path, capsys):
    gen.generate(tmp_path, customers=500, progress=True)
    assert "chunk" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs", [dict(scale="XL"), dict(fmt="json"), dict(seed=-1),
                                    dict(customers=0), dict(anchor="2026-11-20")])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        gen.generate(tmp_path, **kwargs)


# ------------------------------------------------------------------ types and integrity
@pytest.mark.parametrize("table", TABLE_NAMES)
def test_parquet_types_match_schema(parquet_dir, table):
    schema = pq.read_schema(parquet_dir / f"{table}.parquet")
    assert schema.names == [c.name for c in TABLES[table]]
    for c in TABLES[table]:
        assert schema.field(c.name).type == LOGICAL[c.type], c.name
    for c in TABLES[table]:
        if c.required:
            assert read_parquet(parquet_dir, table)[c.name].null_count == 0, c.name


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_every_optional_column_has_nulls(data, table):
    for c in TABLES[table]:
        if not c.required:
            assert data[table][c.name].null_count > 0, f"{table}.{c.name}"


def test_referential_integrity(data):
    ids = data["customers"]["customer_id"].to_numpy()
    assert len(np.unique(ids)) == len(ids)
    for t in ("purchases", "visits", "laybys"):
        assert np.isin(data[t]["customer_id"].to_numpy(), ids).all(), t


def test_csv_layout(csv_dir):
    for t in TABLE_NAMES:
        with open(csv_dir / f"{t}.csv", encoding="utf-8") as f:
            header = f.readline().strip().replace('"', "").split(",")
        assert header == [c.name for c in TABLES[t]]
    text = (csv_dir / "purchases.csv").read_text(encoding="utf-8")[:20_000]
    assert re.search(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"', text)
    text = (csv_dir / "customers.csv").read_text(encoding="utf-8")
    assert re.search(r",\d{4}-\d\d-\d\d,", text) and ",," in text
    assert re.search(r'"(VIP|staff|wholesale|newsletter)(;[^";]+)+"', text)


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_csv_and_parquet_hold_the_same_data(data, csv_dir, table):
    want = data[table]
    got = read_csv(csv_dir / f"{table}.csv", table).cast(want.schema)
    for name in want.column_names:
        assert got[name].equals(want[name]), f"{table}.{name}"


# ------------------------------------------------------------------ customers
def test_customer_ids_sparse_large_shuffled(data):
    ids = data["customers"]["customer_id"].to_numpy()
    assert ids.min() >= 10**9 and ids.max() <= 9 * 10**15
    assert (np.diff(ids) > 0).mean() < 0.6 and (np.diff(ids) < 0).mean() > 0.4


def test_names_unicode_and_prefix_surnames(data):
    c = data["customers"]
    first, last = values(c["first_name"]), values(c["last_name"])
    assert {"José", "Zoë", "François", "Łukasz"} <= first
    assert {"Müller", "Øster", "Ærø", "Nuñez", "Smith", "Smithson"} <= last
    assert any(s != s.upper() and s.upper() in last for s in last)      # SMITH besides Smith
    assert any(not s.isascii() for s in values(c["email"]) | last)


def test_contact_fields(data):
    c = data["customers"]
    phones = values(c["phone"])
    assert any(re.fullmatch(r"\+1 \(\d{3}\) 555-\d{4}", p) for p in phones)
    assert any(re.fullmatch(r"\d{3}\.555\.\d{4}", p) for p in phones)
    assert all("@" in e for e in values(c["email"]))
    assert 0.05 < c["email"].null_count / N < 0.2 and 0.05 < c["phone"].null_count / N < 0.25
    assert values(c["gender"]) == {"female", "male", "other"}
    assert values(c["marital_status"]) == {"single", "married", "divorced", "widowed"}
    assert values(c["origin_shop"]) <= set(SHOPS)


def test_calendar_dates(data):
    c = data["customers"]
    birth = c["birth_date"]
    feb29 = pc.and_(pc.equal(pc.month(birth), 2), pc.equal(pc.day(birth), 29))
    assert share(feb29) >= 0.005
    birthday_today = pc.and_(pc.equal(pc.month(birth), ANCHOR.month), pc.equal(pc.day(birth), ANCHOR.day))
    assert pc.sum(pc.cast(birthday_today, pa.int64())).as_py() >= 2
    wed = c["wedding_date"]
    on_day = pc.and_(pc.equal(pc.month(wed), ANCHOR.month), pc.equal(pc.day(wed), ANCHOR.day))
    assert pc.sum(pc.cast(on_day, pa.int64())).as_py() >= 10
    assert 1 <= (days(wed) == ANCHOR_DAY).sum() <= 0.002 * N          # married today: a few
    for col in ("birth_date", "anniversary_date", "wedding_date", "joined_on"):
        assert days(c[col]).max() <= ANCHOR_DAY, col
    age = (ANCHOR_DAY - days(birth)) / 365.25
    assert age.min() >= 17.9 and age.max() < 91


def test_loyalty_tags_balance_active(data):
    c = data["customers"]
    points = pc.drop_null(c["loyalty_points"]).to_numpy()
    positive = points[points > 0]
    assert points.min() >= 0 and positive.max() > 50 * np.median(positive)
    tags = c["tags"]
    assert set(pc.list_flatten(tags).to_pylist()) <= {"VIP", "staff", "wholesale", "newsletter",
                                                      "birthday club", "Stammkunde"}
    assert tags.null_count > 0.4 * N                                   # no tags: null
    assert pc.min(pc.list_value_length(tags)).as_py() >= 1             # never an empty list
    assert "VIP" in set(pc.list_flatten(tags).to_pylist())
    balance = pc.drop_null(c["account_balance"]).to_numpy()
    assert balance.min() >= 0 and 0.75 < (balance == 0).mean() < 0.95
    inactive = share(pc.invert(pc.fill_null(c["active"], True)))
    assert 0.02 <= inactive <= 0.04


# ------------------------------------------------------------------ purchases
def test_purchases_unsorted_and_heavy_tailed(data):
    p = data["purchases"]
    cust = p["customer_id"].to_numpy()
    assert (np.diff(cust) == 0).mean() < 0.05                         # not grouped by customer
    _, counts = np.unique(cust, return_counts=True)
    assert counts.max() > 20 * np.median(counts)
    amount = p["amount"].to_numpy()
    assert np.percentile(amount[amount > 0], 99.9) > 30 * np.median(amount[amount > 0])


def test_customers_without_any_activity(data):
    ids = data["customers"]["customer_id"].to_numpy()
    seen = np.union1d(data["purchases"]["customer_id"].to_numpy(), data["visits"]["customer_id"].to_numpy())
    assert 0.12 <= 1 - len(seen) / len(ids) <= 0.15


def test_purchase_dates_and_december_peak(data):
    t = data["purchases"]["purchased_at"]
    us = micros(t)
    start = (dt.date(ANCHOR.year - 3, ANCHOR.month, ANCHOR.day) - dt.date(1970, 1, 1)).days
    assert us.min() >= start * 86_400_000_000
    assert us.max() < (ANCHOR_DAY + 1) * 86_400_000_000
    assert us.max() >= ANCHOR_DAY * 86_400_000_000                     # up to the anchor day
    per_month = np.bincount(pc.month(t).to_numpy(), minlength=13)
    assert per_month[12] > 1.8 * per_month[1:11].mean()               # each month seen 3 times


def test_refunds(data):
    p = data["purchases"]
    amount = p["amount"].to_numpy()
    assert 0.02 <= (amount < 0).mean() <= 0.04
    assert (amount == 0).any()                                          # 0 counts as a sale
    matched = duckdb.sql("""
        SELECT count(DISTINCT r.rid) FROM (SELECT *, row_number() OVER () AS rid FROM p) r
        JOIN p s ON s.customer_id = r.customer_id AND s.product = r.product
                AND s.amount = -r.amount AND s.purchased_at <= r.purchased_at
        WHERE r.amount < 0""").fetchall()[0][0]
    assert matched > 0.3 * (amount < 0).sum()


def test_product_attributes(data):
    p = data["purchases"]
    assert {"diamond", "beads", "charms", "rings", "earrings", "necklaces", "bracelets",
            "watches"} == values(p["department"])
    assert {"gold", "silver", "platinum", "white_gold", "rose_gold"} == values(p["metal"])
    gold_charm = pc.and_(pc.equal(p["metal"], "gold"), pc.equal(p["department"], "charms"))
    assert share(gold_charm) > 0.01
    for col in ("brand", "strain", "inventory_group", "inventory_type"):
        assert 0.05 < 1 - p[col].null_count / p.num_rows < 0.6, col
    skus = values(p["product"])
    assert 1000 <= len(skus) <= 5000 and all(re.fullmatch(r"SKU-\d{6}", s) for s in skus)
    assert values(p["shop"]) == set(SHOPS) and "Zürich Bahnhofstrasse" in SHOPS
    qty = p["quantity"].to_numpy(zero_copy_only=False)                 # nulls as NaN
    amount = p["amount"].to_numpy()
    known = ~np.isnan(qty) & (amount != 0)
    assert (qty[known] > 1).any()
    assert (np.sign(qty[known]) == np.sign(amount[known])).all()       # returns: negative units


# ------------------------------------------------------------------ visits and laybys
def test_visits(data):
    v = data["visits"]
    assert values(v["status"]) == {"completed", "cancelled", "no_show", "booked"}
    status = v["status"].to_numpy(zero_copy_only=False)
    start = v["starts_at"].cast(pa.int64()).to_numpy()
    day = start // 86_400_000_000
    booked = status == "booked"
    assert (day[booked] > ANCHOR_DAY).all() and (day[booked] <= ANCHOR_DAY + 90).all()
    assert (day[~booked] <= ANCHOR_DAY).all()
    assert (status == "completed").mean() > 0.7
    with_booking = len(np.unique(v["customer_id"].to_numpy()[booked]))
    assert 0.08 * N <= with_booking <= 0.12 * N
    recent = (status == "completed") & (day > ANCHOR_DAY - 365)
    _, counts = np.unique(v["customer_id"].to_numpy()[recent], return_counts=True)
    assert (counts >= 3).sum() > 0.02 * N                              # regulars
    _, ever = np.unique(v["customer_id"].to_numpy()[status == "completed"], return_counts=True)
    assert (ever == 1).any()                                           # first-visit customers
    assert values(v["shop"]) == set(SHOPS)


def test_laybys(data):
    lb = data["laybys"]
    opened, due = days(lb["opened_on"]), days(lb["due_on"])
    balance = lb["balance"].to_numpy()
    status = lb["status"].to_numpy(zero_copy_only=False)
    assert set(status) == {"open", "closed"}
    assert (opened < ANCHOR_DAY).all() and (opened < due).all()
    assert (np.abs(due - ANCHOR_DAY) < 366).all()
    assert balance.min() == 0 and (balance > 0).any()
    assert (balance[status == "closed"] == 0).all()
    overdue = (status == "open") & (balance > 0) & (due < ANCHOR_DAY)
    assert overdue.sum() > 0 and ((status == "open") & (due >= ANCHOR_DAY)).sum() > 0
