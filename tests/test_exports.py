"""Typed exports: rank values typed by their key (date / int64, null when absent) and files
that say what they came from (Parquet key-value metadata, a CSV's sidecar .json)."""
from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from segments.engine.model import segment_json
from tests.grpc_support import ANCHOR, REPO, client, grpc_env  # noqa: F401  (fixtures)

NAN_CELL = re.compile(r"(^|,)\"?nan\"?(,|$)", re.I | re.M)
LAST = {"include": {"all": {}}, "order_by": {"key": "last_purchase", "direction": "asc"}}
POINTS = {"include": {"all": {}}, "order_by": {"key": "loyalty_points"}}
SPEND = {"include": {"all": {}}, "order_by": {"key": "spend", "range": {"last_n_months": 6}}, "limit": 30}


def test_rank_values_are_typed_by_key_with_nulls_not_nan(grpc_env):
    eng = grpc_env.engine
    m = eng.materialize("shop", segment_json.parse_segment(LAST), as_of=ANCHOR)
    col = m.to_arrow().column("rank_value")
    assert col.type == pa.date32() and col.null_count > 0
    p = eng.preview("shop", segment_json.parse_segment(LAST), 40, (), ANCHOR)
    assert col.to_pylist()[:40] == [r["rank_value"] for r in p.rows]
    assert all(isinstance(v, dt.date) for v in col.to_pylist() if v is not None)
    pts = eng.materialize("other", segment_json.parse_segment(POINTS), as_of=ANCHOR).to_arrow().column("rank_value")
    assert pts.type == pa.int64() and pts.null_count > 0
    spend = eng.materialize("shop", segment_json.parse_segment(SPEND), as_of=ANCHOR).to_arrow().column("rank_value")
    assert spend.type == pa.int64() and spend.null_count == 0


def test_materialize_over_grpc_keeps_the_types(client, grpc_env):
    got = client.materialize("shop", LAST, ["email"], ANCHOR)
    want = grpc_env.engine.materialize("shop", segment_json.parse_segment(LAST), ("email",), ANCHOR)
    assert got.to_arrow().equals(want.to_arrow())


def test_parquet_export_carries_segment_key_as_of_and_sequence(client, grpc_env):
    r = client.export("shop", LAST, ["email", "loyalty_points"], "parquet", "typed-last", ANCHOR)
    path = grpc_env.export_dir / r["file_name"]
    t = pq.read_table(path)
    assert t.schema.field("rank_value").type == pa.date32()
    assert t.schema.field("loyalty_points").type == pa.int64()
    meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items() if k.startswith(b"segments.")}
    assert segment_json.loads(meta["segments.segment"]) == segment_json.parse_segment(LAST)
    assert meta["segments.rank_key"] == "last_purchase" and meta["segments.dataset"] == "shop"
    assert meta["segments.as_of"] == "2026-11-20T17:00:00Z"
    assert int(meta["segments.change_sequence"]) == grpc_env.engine.info("shop")["live"]["sequence"]
    assert int(meta["segments.rows"]) == t.num_rows == r["rows"]


def test_csv_export_gets_a_sidecar_with_the_same_and_no_nan(client, grpc_env):
    r = client.export("shop", LAST, ["email"], "csv", "typed-last", ANCHOR)
    path = grpc_env.export_dir / r["file_name"]
    assert not NAN_CELL.search(path.read_text())
    rows = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={"rank_value": pa.string()}))
    values = rows.column("rank_value").to_pylist()
    assert all(v == "" or dt.date.fromisoformat(v) for v in values) and "" in values  # null: empty
    side = json.loads((path.parent / (path.name + ".json")).read_text())
    assert side["segment"] == json.loads(segment_json.dumps(segment_json.parse_segment(LAST)))
    assert side["rank_key"] == "last_purchase" and side["as_of"] == "2026-11-20T17:00:00Z"
    assert side["change_sequence"] == grpc_env.engine.info("shop")["live"]["sequence"]
    assert {"name": "rank_value", "type": "date32[day]"} in side["columns"] and side["rows"] == r["rows"]


def test_group_exports_name_the_groups_definition_and_instant(client, grpc_env):
    client.create_group("shop", "typed-group", SPEND, as_of=ANCHOR)
    r = client.export_group("shop", "typed-group", ["email"], "parquet", "typed-group")
    meta = pq.read_schema(grpc_env.export_dir / r["file_name"]).metadata
    assert meta[b"segments.as_of"] == b"2026-11-20T17:00:00Z"
    assert segment_json.loads(meta[b"segments.segment"].decode()) == segment_json.parse_segment(SPEND)
    client.delete_group("shop", "typed-group")


def test_cli_materialize_writes_the_same(grpc_env, tmp_path):
    seg = tmp_path / "seg.json"
    seg.write_text(json.dumps(LAST))
    out = tmp_path / "out.csv"
    r = subprocess.run([sys.executable, "-m", "segments.cli.main", "--data", str(grpc_env.root), "materialize",
                        "--dataset", "shop", "--segment", str(seg), "--as-of", "2026-11-20T17:00:00Z",
                        "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    side = json.loads((tmp_path / "out.csv.json").read_text())
    assert side["as_of"] == "2026-11-20T17:00:00Z" and side["rank_key"] == "last_purchase"
    assert not NAN_CELL.search(out.read_text())


@pytest.mark.parametrize("key", ["last_purchase", "loyalty_points", "spend"])
def test_rank_array_round_trips(key):
    import numpy as np

    from segments.engine.results import rank_array, rank_values_of
    vals = np.array([3.0, np.nan, 20000.0]) if key != "spend" else np.array([5, -3, 0], np.int64)
    back = rank_values_of(rank_array(vals, key), key)
    assert np.array_equal(back, vals, equal_nan=True) and back.dtype == vals.dtype
