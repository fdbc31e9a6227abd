"""`python -m segments.cli.demo` (make demo): the spec's seed examples, end to end over gRPC.

Generates 20,000 customers (seed 1) in a temporary folder, creates dataset "demo"
(America/New_York), ingests it, serves it in-process on a free port, and asks each example
through SegmentsClient as of the generator's anchor day (2026-11-20T17:00:00Z): count,
email / SMS reachable, and the first few customers. Then a live sale and an erasure change
the answers without a reload, and the server stops cleanly.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

AS_OF = "2026-11-20T17:00:00Z"
DIAMOND = {"department": ["diamond"]}
SIX_MONTHS = {"last_n_months": 6}
BEADS_CHARMS = {"department": ["beads", "charms"]}

# (title, segment in the documented JSON format, preview fields)
EXAMPLES = [
    ("Best 50 customers of the last six months in diamonds",
     {"include": {"bought": {"filter": DIAMOND, "range": SIX_MONTHS}},
      "order_by": {"key": "spend", "filter": DIAMOND, "range": SIX_MONTHS}, "limit": 50},
     ["first_name", "last_name"]),
    ("Top 100 spending $500-$1000 on beads or charms who bought a gold charm",
     {"include": {"all_of": [{"spend": {"filter": BEADS_CHARMS, "cmp": {"between": [50000, 100000]}}},
                             {"bought": {"filter": {"metal": ["gold"], "department": ["charms"]}}}]},
      "order_by": {"key": "spend", "filter": BEADS_CHARMS}, "limit": 100},
     ["first_name", "last_name"]),
    ("Lapsing regulars",
     {"include": {"all_of": [{"visited": {"range": {"last_n_months": 12}, "cmp": {">=": 3}}},
                             {"not": {"visited": {"range": {"last_n_months": 2}}}},
                             {"not": "upcoming_appointment"}]}},
     ["first_name", "last_name", "phone"]),
    ("First-visit follow-ups",
     {"include": {"all_of": [{"visited": {"cmp": {"==": 1}}},
                             {"visited": {"range": {"last_n_days": 30}}},
                             {"not": "upcoming_appointment"}]}},
     ["first_name", "last_name", "email"]),
    ("Married today", {"include": "married_today"}, ["first_name", "last_name", "wedding_date"]),
    ("Birthday today", {"include": {"birthday": "today"}}, ["first_name", "last_name", "birth_date"]),
    ("Birthday this month and loyalty member",
     {"include": {"all_of": [{"birthday": "this_month"}, "loyalty_member"]}},
     ["first_name", "last_name", "birth_date"]),
    ("December sales of at least $200",
     {"include": {"spend": {"range": {"custom": {"start": "2025-12-01", "end": "2025-12-31"}},
                            "cmp": {">=": 20000}}}},
     ["first_name", "last_name"]),
    ("Age 30..59 with more than $3000 in diamonds",
     {"include": {"all_of": [{"age": {"between": [30, 59]}},
                             {"spend": {"filter": DIAMOND, "cmp": {">": 300000}}}]}},
     ["first_name", "last_name", "birth_date"]),
]


def _fmt(v) -> str:
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


DIAMOND_BUYERS = {"include": {"bought": {"filter": DIAMOND, "range": SIX_MONTHS}}}
NOT_DIAMOND_BUYERS = {"include": {"not": DIAMOND_BUYERS["include"]}, "limit": 1}
SALE_AT = "2026-11-20T15:30:00Z"  # this afternoon, before the as-of instant


def _money(cents) -> str:
    return f"${int(cents) / 100:,.2f}"


def live_change(c) -> None:
    """A sale this afternoon, then an erasure, through the live-update calls: no reload,
    each visible to the next call (docs/live-updates.md)."""
    print("Live: a diamond sale at 15:30 today to a customer with no diamond purchase in six months")
    before = c.count("demo", DIAMOND_BUYERS, AS_OF).count
    best = c.preview("demo", EXAMPLES[0][1], 1, [], AS_OF).rows[0]
    buyer = int(c.materialize("demo", NOT_DIAMOND_BUYERS, as_of=AS_OF).customer_ids[0])
    amount = int(best["rank_value"]) + 10_000
    t = time.perf_counter()
    ack = c.append("demo", "purchases", [{"customer_id": buyer, "purchased_at": SALE_AT, "amount": amount,
                                          "department": "diamond", "metal": "platinum"}])
    ms = (time.perf_counter() - t) * 1e3
    after = c.count("demo", DIAMOND_BUYERS, AS_OF).count
    top = c.preview("demo", EXAMPLES[0][1], 1, [], AS_OF).rows[0]
    print(f"   appended 1 line to #{buyer} (batch {ack['sequence']}, durable, acknowledged in {ms:.1f} ms)")
    print(f"   diamond buyers, last six months: {before:,} -> {after:,}")
    print(f"   example 1's best customer: #{best['customer_id']} ({_money(best['rank_value'])}) -> "
          f"#{top['customer_id']} ({_money(top['rank_value'])})")
    c.delete_customers("demo", [buyer])
    gone = c.count("demo", DIAMOND_BUYERS, AS_OF).count
    top = c.preview("demo", EXAMPLES[0][1], 1, [], AS_OF).rows[0]
    print(f"   erased #{buyer}: diamond buyers {gone:,}, best customer #{top['customer_id']} again")
    info = c.dataset_info("demo")["live"]
    print(f"   pending compaction: {', '.join(f'{n} {k}' for k, n in info['pending'].items() if n)}")


def run(workdir: Path, customers: int, show: int, open_engine=None) -> int:
    """The whole demo in workdir; 0 on success. open_engine(data folder): the engine to
    serve (default: an Engine; make cluster-demo passes a ClusterEngine's)."""
    from segments.client.client import SegmentsClient
    from segments.engine.api import Engine
    from segments.bench.generate import generate
    from segments.server.app import build_server, stop

    t0 = time.perf_counter()
    uploads = workdir / "uploads"          # the server's ingest root: Ingest reads uploads/<dataset>/
    src = uploads / "demo"
    rows = generate(src, customers=customers, seed=1)
    print(f"generated {', '.join(f'{v:,} {k}' for k, v in rows.items())} in {time.perf_counter() - t0:.1f} s")

    engine = (open_engine or Engine)(workdir / "data")
    server, port = build_server(engine, port=0, ingest_root=uploads)
    server.start()
    print(f"server listening on 127.0.0.1:{port} (no tokens: localhost only)\n")
    try:
        with SegmentsClient(f"127.0.0.1:{port}") as c:
            c.create_dataset("demo", "America/New_York")
            t1 = time.perf_counter()
            c.ingest("demo", ".")
            info = c.dataset_info("demo")
            print(f"dataset demo: {info['rows']['customers']:,} customers, {info['rows']['purchases']:,} "
                  f"purchase lines, ingested in {time.perf_counter() - t1:.1f} s; as of {AS_OF}\n")
            for i, (title, seg, fields) in enumerate(EXAMPLES, 1):
                first = c.count("demo", seg, AS_OF)  # may include compiling kernels on first use
                t2 = time.perf_counter()
                r = c.count("demo", seg, AS_OF)
                ms = (time.perf_counter() - t2) * 1e3
                p = c.preview("demo", seg, show, fields, AS_OF)
                print(f"{i}. {title}")
                print(f"   {r.count:,} customers; email-reachable {r.email_reachable:,}, "
                      f"SMS-reachable {r.sms_reachable:,}  (count: engine {r.elapsed_ms:.2f} ms, round trip "
                      f"{ms:.2f} ms; first call {first.elapsed_ms:.0f} ms)")
                for row in p.rows:
                    cells = [f"#{row['customer_id']}"] + [_fmt(row[f]) for f in fields if row.get(f) is not None]
                    if "rank_value" in row:
                        cells.append(f"rank {_fmt(row['rank_value'])}")
                    print("     " + "  ".join(cells))
                print()
            print("definition of example 1 as sent (JSON format, docs/segments.md):")
            print("   " + json.dumps(EXAMPLES[0][1]) + "\n")
            live_change(c)
    finally:
        stop(server, grace=5)
        engine.close()
        print("\nserver stopped")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m segments.cli.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", help="work folder to keep (default: a temporary folder, removed after)")
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--show", type=int, default=3, help="preview rows per example")
    args = ap.parse_args(argv)
    if args.dir:
        d = Path(args.dir)
        d.mkdir(parents=True, exist_ok=True)
        return run(d, args.customers, args.show)
    with tempfile.TemporaryDirectory(prefix="segments-demo-") as d:
        return run(Path(d), args.customers, args.show)


if __name__ == "__main__":
    sys.exit(main())
