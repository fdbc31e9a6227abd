"""The bench suite: named segments covering every condition family and every seed example.

Each entry is written in the documented JSON format (docs/segments.md) and parsed with
engine.model.segment_json.loads, so the bench measures exactly what a caller would send. All are
evaluated as of AS_OF, the generator's anchor day (2026-11-20, a Friday) at 17:00 UTC.
`segments(sample_ids)` takes customer_ids present in the dataset for the `customers`
conditions (and adds two ids that do not exist).

`segments(sample_ids, codes)` adds the data-dependent segments (`sku_*`, `brand_pair_*`,
`dept_metal_*`): filters on one SKU, on two brands, on a department x metal pair, over a
bounded range and over all time. Their values are not the default generator's: `codes`
comes from `pick_codes` over the dataset's own purchase lines (a mid-frequency SKU, the
rarest SKU, two mid-frequency brands, a mid-frequency department x metal pair), so they
select comparable shares of any shape's data. Without `codes` they are left out.
"""
from __future__ import annotations

import datetime as dt
import json
from contextlib import suppress
from dataclasses import dataclass
from typing import List, Optional, Sequence

from segments.engine.model import segment as S
from segments.engine.model.segment_json import loads

AS_OF = dt.datetime(2026, 11, 20, 17, 0, tzinfo=dt.timezone.utc)
MISSING_IDS = (1, 2)                 # ids no generated dataset holds (ids start at 10**9)
LIST_SIZE = 1000                     # customers in the `customers` list segment

DIAMOND = {"department": ["diamond"]}
SIX_MONTHS = {"last_n_months": 6}
BEADS_CHARMS = {"department": ["beads", "charms"]}


@dataclass(frozen=True)
class BenchSegment:
    """One named segment of the suite."""
    name: str
    covers: str          # the condition families / seed example it stands for
    json: str            # the definition as sent
    segment: S.Segment   # the same, parsed

    @property
    def ranked(self) -> bool:
        return self.segment.order_by is not None


def _definitions(sample_ids: Sequence[int]) -> list:
    ids = [int(i) for i in sample_ids]
    one = ids[len(ids) // 2] if ids else 10042
    return [
        # ---------------------------------------------------------- seed examples (conditions.md)
        ("seed_best50_diamond", "seed: best 50 of the last six months in diamonds; bought, ranked spend, limit",
         {"include": {"bought": {"filter": DIAMOND, "range": SIX_MONTHS}},
          "order_by": {"key": "spend", "filter": DIAMOND, "range": SIX_MONTHS, "direction": "desc"},
          "limit": 50}),
        ("seed_top100_beads_gold_charm", "seed: top 100 spend $500-1000 on beads/charms and a gold charm",
         {"include": {"all_of": [
             {"spend": {"filter": BEADS_CHARMS, "range": "ever", "cmp": {"between": [50000, 100000]}}},
             {"bought": {"filter": {"metal": ["gold"], "department": ["charms"]}}}]},
          "order_by": {"key": "spend", "filter": BEADS_CHARMS, "range": "ever", "direction": "desc"},
          "limit": 100}),
        ("seed_lapsing_regulars", "seed: visited >= 3 in 12 months, not visited in 2, not upcoming",
         {"include": {"all_of": [
             {"visited": {"range": {"last_n_months": 12}, "cmp": {">=": 3}}},
             {"not": {"visited": {"range": {"last_n_months": 2}}}},
             {"not": "upcoming_appointment"}]}}),
        ("seed_first_visit_followups", "seed: visited == 1 ever, >= 1 in 30 days, not upcoming",
         {"include": {"all_of": [
             {"visited": {"range": "ever", "cmp": {"==": 1}}},
             {"visited": {"range": {"last_n_days": 30}, "cmp": {">=": 1}}},
             {"not": "upcoming_appointment"}]}}),
        ("seed_married_today", "seed: married_today",
         {"include": "married_today"}),
        ("seed_birthday_today", "seed: birthday today",
         {"include": {"birthday": "today"}}),
        ("seed_birthday_month_member", "seed: birthday this month and loyalty member",
         {"include": {"all_of": [{"birthday": "this_month"}, "loyalty_member"]}}),
        ("seed_december_200", "seed: sales in December of at least $200 (custom dates, spend)",
         {"include": {"spend": {"range": {"custom": {"start": "2025-12-01", "end": "2025-12-31"}},
                                "cmp": {">=": 20000}}}}),
        ("seed_age_30_59_diamond_3000", "seed: age 30..59 with more than $3000 in diamonds",
         {"include": {"all_of": [{"age": {"between": [30, 59]}},
                                 {"spend": {"filter": DIAMOND, "cmp": {">": 300000}}}]}}),
        # ---------------------------------------------------------- profile
        ("profile_bitmaps", "gender, city, tags any/all, loyalty_member, origin_shop, postal_code, reachable, marital_status",
         {"include": {"all_of": [
             {"gender": ["female", "other"]},
             {"city": ["New York", "Zürich", "Brooklyn"]},
             {"any_of": [{"tags": {"any": ["VIP", "birthday club"]}},
                         {"tags": {"all": ["newsletter", "Stammkunde"]}}]},
             "loyalty_member",
             {"any_of": [{"origin_shop": ["Downtown", "Online"]}, {"postal_code": ["10001", "8001"]}]},
             {"reachable": "sms_opt_in"},
             {"reachable": "has_phone"},
             {"not": {"marital_status": ["widowed"]}}]}}),
        ("profile_numeric", "age, loyalty_points, account_balance, joined",
         {"include": {"all_of": [
             {"age": {"between": [25, 64]}},
             {"loyalty_points": {">=": 500}},
             {"any_of": [{"account_balance": {">": 0}},
                         {"joined": {"range": {"last_n_months": 24}}}]}]}}),
        ("profile_dates", "birthday next_days / month, anniversary this_month, married_today",
         {"include": {"any_of": [
             {"birthday": {"mode": "next_days", "days": 14}},
             {"anniversary": "this_month"},
             {"birthday": {"mode": "month", "month": 2}},
             "married_today"]}}),
        ("search_surname", "search (accent-blind, phone digits) and surname",
         {"include": {"any_of": [
             {"search": {"text": "zoe", "fields": ["first_name", "email"]}},
             {"search": {"text": "555-0128", "fields": ["phone"]}},
             {"surname": "muller"},
             {"search": {"text": "königstrasse", "fields": ["address"]}}]}}),
        ("customers_list", f"customers: {LIST_SIZE} ids (2 missing), email opt-in or booked at a shop",
         {"include": {"all_of": [{"customers": ids[:LIST_SIZE] + list(MISSING_IDS)},
                                 {"any_of": [{"reachable": "email_opt_in"},
                                             {"upcoming_appointment": {"shops": ["Downtown"]}}]}]}}),
        ("one_customer_upcoming", "docs: just one customer, with an upcoming appointment at a shop",
         {"include": {"all_of": [{"customers": [one]}, {"upcoming_appointment": {"shops": ["Downtown"]}}]}}),
        # ---------------------------------------------------------- purchases
        ("bought_anything_ever", "bought, no filter, ever: the full purchase scan",
         {"include": {"bought": {}}}),
        ("spend_ever_5000", "spend, no filter, ever, > $5000: the full scan with refunds",
         {"include": {"spend": {"cmp": {">": 500000}}}}),
        ("bought_gold_charm_ytd", "bought with two filter fields on the same line, year_to_date",
         {"include": {"bought": {"filter": {"metal": ["gold"], "department": ["charms"]},
                                 "range": "year_to_date"}}}),
        ("spend_brand_90d", "spend between, brand filter, last_n_days 90",
         {"include": {"spend": {"filter": {"brand": ["Pandora", "Trollbeads", "Thomas Sabo"]},
                                "range": {"last_n_days": 90}, "cmp": {"between": [10000, 50000]}}}}),
        ("count_dispensary_prev_month", "purchase_count, 3 filter fields (group, strain, shop), previous_month",
         {"include": {"purchase_count": {
             "filter": {"inventory_group": ["flower", "pre-rolls"],
                        "strain": ["Blue Dream", "Gelato", "OG Kush"], "shop": ["Downtown", "Online"]},
             "range": "previous_month", "cmp": {">=": 1}}}}),
        ("frequent_12m", "purchase_count >= 10 in 12 months, month_to_date and last_week bought",
         {"include": {"all_of": [
             {"purchase_count": {"range": {"last_n_months": 12}, "cmp": {">=": 10}}},
             {"any_of": [{"bought": {"range": "month_to_date"}},
                         {"bought": {"range": "last_week"}},
                         {"bought": {"range": "today"}},
                         {"bought": {"range": "yesterday"}}]}]}}),
        ("diamond_lapsed_offsets", "docs: six months ending six months ago (custom offsets), not bought since",
         {"include": {"all_of": [
             {"bought": {"filter": DIAMOND,
                         "range": {"custom": {"start": {"months": -12, "days": 1}, "end": {"months": -6}}}}},
             {"not": {"bought": {"filter": DIAMOND, "range": SIX_MONTHS}}}]}}),
        # ---------------------------------------------------------- visits, laybys
        ("visits_shops", "visited at shops last_week, not visited, upcoming at shops",
         {"include": {"any_of": [
             {"visited": {"shops": ["Downtown", "Online"], "range": "last_week"}},
             {"all_of": [{"not": {"visited": {"range": {"last_n_months": 6}}}},
                         {"upcoming_appointment": {"shops": ["Mall of America", "Østerbro"]}}]}]}}),
        ("overdue_layby_balance", "overdue_layby and account_balance > 0",
         {"include": {"any_of": ["overdue_layby", {"account_balance": {">": 0}}]}}),
        # ---------------------------------------------------------- behaviour (shared/spec behaviour.md)
        ("bh_new_this_month", "behaviour: first_purchase month_to_date (new customers this month)",
         {"include": {"first_purchase": {"range": "month_to_date"}}}),
        ("bh_lapsed_90", "behaviour: last_purchase 90 days ago or earlier (lapsed)",
         {"include": {"last_purchase": {"range": {"custom": {"end": {"days": -90}}}}}}),
        ("bh_monthly_regulars", "behaviour: regularly, a purchase in 6 of the last 12 months",
         {"include": {"regularly": {"event": {"bought": {}}, "period": "month", "periods": 12, "min_periods": 6}}}),
        ("bh_ring_then_band", "behaviour: sequence, rings then charms within 180 days",
         {"include": {"sequence": {"first": {"bought": {"filter": {"department": ["rings"]}}},
                                   "then": {"bought": {"filter": {"department": ["charms"]}}}, "within_days": 180}}}),
        ("bh_visit_no_purchase", "behaviour: sequence then_not, a visit in 30 days and no purchase within 7",
         {"include": {"sequence": {"first": {"visited": {}}, "then_not": {"bought": {}}, "within_days": 7,
                                   "range": {"last_n_days": 30}}}}),
        ("bh_order_count", "behaviour: order_count >= 3 in 12 months",
         {"include": {"order_count": {"range": {"last_n_months": 12}, "cmp": {">=": 3}}}}),
        ("bh_aov", "behaviour: average_order_value >= $150 ever",
         {"include": {"average_order_value": {"cmp": {">=": 15000}}}}),
        ("bh_top20_spend", "behaviour: percentile, top 20 % by 12-month spend",
         {"include": {"percentile": {"of": {"spend": {"range": {"last_n_months": 12}}}, "cmp": {">=": 80}}}}),
        ("bh_rfm_champions", "behaviour: rfm r, f, m >= 4 over 12 months",
         {"include": {"rfm": {"range": {"last_n_months": 12}, "r": {">=": 4}, "f": {">=": 4}, "m": {">=": 4}}}}),
        ("bh_holdout", "behaviour: everyone but a 10 % random_bucket holdout",
         {"include": "all", "exclude": {"random_bucket": {"salt": "spring-2027", "cmp": {"<": 1000}}}}),
        # ---------------------------------------------------------- combining, ranking
        ("suppression_exclude", "docs: reachable by email, exclude staff",
         {"include": {"all_of": [{"reachable": "has_email"}, {"reachable": "email_opt_in"}]},
          "exclude": {"tags": {"any": ["staff"]}}}),
        ("append_on_vip", "docs: best 50 diamond of six months + every VIP, never staff",
         {"include": {"bought": {"filter": DIAMOND, "range": SIX_MONTHS}},
          "exclude": {"tags": {"any": ["staff"]}},
          "append": [{"tags": {"any": ["VIP"]}}],
          "order_by": {"key": "spend", "filter": DIAMOND, "range": SIX_MONTHS},
          "limit": 50}),
        ("ranked_last_purchase_asc", "order_by last_purchase asc, limit 200, not email reachable",
         {"include": {"all_of": [{"bought": {"filter": {"department": ["charms"]}}},
                                 {"not": {"any_of": [{"reachable": "email_opt_in"},
                                                     {"reachable": "sms_opt_in"}]}}]},
          "order_by": {"key": "last_purchase", "filter": {"department": ["charms"]}, "direction": "asc"},
          "limit": 200}),
        ("ranked_points_members", "order_by loyalty_points, limit 500 (absent values last)",
         {"include": {"any_of": ["loyalty_member", {"tags": {"any": ["VIP"]}}]},
          "order_by": {"key": "loyalty_points"}, "limit": 500}),
        ("ranked_count_ytd_all", "all customers ordered by purchase_count year_to_date (no limit)",
         {"include": "all",
          "order_by": {"key": "purchase_count", "range": "year_to_date"}}),
    ]


PICK_FIELDS = ("department", "metal", "brand", "product")


def _by_lines(table, fields) -> list:
    """(values..., lines) of the non-null combinations of `fields`, most lines first, ties
    by value (deterministic)."""
    import pyarrow.compute as pc

    t = table.select(list(fields))
    for f in fields:
        t = t.filter(pc.is_valid(t[f]))
    g = t.group_by(list(fields)).aggregate([([], "count_all")]).to_pylist()
    rows = [tuple(r[f] for f in fields) + (r["count_all"],) for r in g]
    return sorted(rows, key=lambda r: (-r[-1],) + tuple(r[:-1]))


PICK_GROUPS = (("product",), ("brand",), ("department", "metal"))


def pick_codes(purchases) -> dict:
    """Values of the data-dependent segments, chosen from a purchases table (pyarrow, with
    PICK_FIELDS): `sku` the SKU at the 95th percentile of popularity (rank n/20 by lines),
    `rare_sku` the SKU with the fewest lines, `brands` the two brands at rank n/10 and the
    next, `dept_metal` the department x metal pair at rank n/4; each with its line count."""
    return pick_codes_from_counts({g: _by_lines(purchases, list(g)) for g in PICK_GROUPS})


def pick_codes_of_parts(parts) -> dict:
    """pick_codes over a purchases table given as parts (pyarrow tables with PICK_FIELDS,
    e.g. one Parquet file at a time): each part's line counts per value are summed, so
    memory holds one part, not the whole table (200M lines at scale L)."""
    import pyarrow as pa

    partial = {g: [] for g in PICK_GROUPS}
    for part in parts:
        for g in PICK_GROUPS:
            rows = _by_lines(part, list(g))
            partial[g].append(pa.table({**{f: pa.array([r[i] for r in rows], pa.string()) for i, f in enumerate(g)},
                                        "n": pa.array([r[-1] for r in rows], pa.int64())}))
    counts = {}
    for g, tabs in partial.items():
        if not tabs:
            counts[g] = []
            continue
        t = pa.concat_tables(tabs).group_by(list(g)).aggregate([("n", "sum")]).to_pylist()
        counts[g] = sorted((tuple(r[f] for f in g) + (r["n_sum"],) for r in t),
                           key=lambda r: (-r[-1],) + tuple(r[:-1]))
    return pick_codes_from_counts(counts)


def pick_codes_from_counts(counts: dict) -> dict:
    """pick_codes from the line counts of PICK_GROUPS: {group: [(values..., lines)], most
    lines first, ties by value}."""
    skus, brands, pairs = (counts[g] for g in PICK_GROUPS)
    if not skus or len(brands) < 2 or not pairs:
        raise ValueError("pick_codes: the purchases hold too few SKUs, brands or department x metal pairs")
    sku = skus[len(skus) // 20]
    rare = skus[-1]
    b = min(len(brands) // 10, len(brands) - 2)
    pair = pairs[len(pairs) // 4]
    return {"sku": sku[0], "sku_lines": sku[1], "rare_sku": rare[0], "rare_sku_lines": rare[1],
            "brands": [brands[b][0], brands[b + 1][0]], "brands_lines": brands[b][1] + brands[b + 1][1],
            "dept_metal": [pair[0], pair[1]], "dept_metal_lines": pair[2],
            "skus": len(skus), "brand_values": len(brands), "dept_metal_pairs": len(pairs)}


def _code_definitions(codes: dict) -> list:
    """The data-dependent segments over codes from pick_codes."""
    sku = {"product": [codes["sku"]]}
    rare = {"product": [codes["rare_sku"]]}
    brands = {"brand": list(codes["brands"])}
    dm = {"department": [codes["dept_metal"][0]], "metal": [codes["dept_metal"][1]]}
    return [
        ("sku_bought_90d", f"one SKU ({codes['sku_lines']:,} lines), bought, last_n_days 90",
         {"include": {"bought": {"filter": sku, "range": {"last_n_days": 90}}}}),
        ("sku_twice_ever", "one SKU bought at least twice, ever (purchase_count)",
         {"include": {"purchase_count": {"filter": sku, "range": "ever", "cmp": {">=": 2}}}}),
        ("sku_vip_twice_ever", "issue example: VIP who bought one SKU at least twice, ever",
         {"include": {"all_of": [{"tags": {"any": ["VIP"]}},
                                 {"purchase_count": {"filter": sku, "range": "ever", "cmp": {">=": 2}}}]}}),
        ("sku_rare_ever", f"the rarest SKU ({codes['rare_sku_lines']} lines), bought ever",
         {"include": {"bought": {"filter": rare}}}),
        ("brand_pair_spend_12m", f"two brands ({codes['brands_lines']:,} lines), spend >= $100, last_n_months 12",
         {"include": {"spend": {"filter": brands, "range": {"last_n_months": 12}, "cmp": {">=": 10000}}}}),
        ("brand_pair_ever", "two brands, bought ever",
         {"include": {"bought": {"filter": brands}}}),
        ("dept_metal_6m", f"department x metal ({codes['dept_metal_lines']:,} lines), bought, last_n_months 6",
         {"include": {"bought": {"filter": dm, "range": {"last_n_months": 6}}}}),
        ("dept_metal_spend_ever", "department x metal, spend > $1000, ever",
         {"include": {"spend": {"filter": dm, "range": "ever", "cmp": {">": 100000}}}}),
        ("dept_metal_top100_ever", "department x metal, best 100 by all-time spend on it",
         {"include": {"bought": {"filter": dm}},
          "order_by": {"key": "spend", "filter": dm, "range": "ever", "direction": "desc"},
          "limit": 100}),
    ]


# The saved segment and the frozen group the reference kinds read (prepare_references puts
# them in the bench dataset's catalog and gives the peer its own answers).
REF_SEGMENT = ("bench_big_spenders", "loyalty members with $500+ over the last 12 months",
               {"include": {"all_of": [{"loyalty_member": {}},
                                       {"spend": {"range": {"last_n_months": 12}, "cmp": {">=": 50000}}}]}})
REF_GROUP = ("bench_repeat_buyers", "three or more purchases ever, frozen as of AS_OF",
             {"include": {"purchase_count": {"cmp": {">=": 3}}}})


def _reference_definitions() -> list:
    return [
        ("bh_in_segment", f"behaviour: in_segment, members of the saved segment {REF_SEGMENT[0]}",
         {"include": {"in_segment": REF_SEGMENT[0]}}),
        ("bh_in_group", f"behaviour: in_group, members of the frozen group {REF_GROUP[0]} still active",
         {"include": {"in_group": REF_GROUP[0]}}),
    ]


def prepare_references(engine, dataset: str, peer=None) -> dict:
    """Put REF_SEGMENT and REF_GROUP (frozen as of AS_OF) in the engine's catalog for
    `dataset`, replacing earlier ones (a cached dataset keeps its catalog; a group expires),
    and give `peer` (DuckPeer or the naive reference) the saved definition and its own
    answer for the group, so in_group is checked against an independent membership.
    Returns {name: member count} as the engine froze them."""
    from segments.engine.errors import NotFound
    cat = engine.references(dataset).catalog
    name, desc, definition = REF_SEGMENT
    gname, gdesc, gdef = REF_GROUP
    seg, gseg = loads(json.dumps(definition)), loads(json.dumps(gdef))
    with suppress(NotFound):
        cat.delete_segment(dataset, name)
    with suppress(NotFound):
        cat.delete_group(dataset, gname)
    cat.create_segment(dataset, name, seg, description=desc)
    group = cat.create_group(dataset, gname, gseg, as_of=AS_OF, description=gdesc)
    if peer is not None:
        peer.saved_segments[name] = seg
        ids = peer.result(gseg, AS_OF)
        if hasattr(peer, "set_group"):
            peer.set_group(gname, ids)
        else:
            peer.groups[gname] = {int(x) for x in ids}
    return {name: None, gname: group.count}


def segments(sample_ids: Sequence[int] = (), codes: Optional[dict] = None,
             references: bool = False) -> List[BenchSegment]:
    """The suite, in order; `sample_ids`: existing customer_ids for the `customers` lists;
    `codes` (pick_codes of the dataset): adds the data-dependent segments; `references`:
    adds in_segment / in_group (after prepare_references)."""
    out = []
    defs = _definitions(sample_ids) + (_reference_definitions() if references else []) \
        + (_code_definitions(codes) if codes else [])
    for name, covers, definition in defs:
        text = json.dumps(definition, ensure_ascii=False)
        out.append(BenchSegment(name, covers, text, loads(text)))
    names = [s.name for s in out]
    assert len(set(names)) == len(names), "duplicate segment names"
    return out


def select(suite: List[BenchSegment], names: str | None) -> List[BenchSegment]:
    """The segments named in a comma-separated list (all when None); unknown names are an error."""
    if not names:
        return suite
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {s.name: s for s in suite}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown segment(s): {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[n] for n in wanted]
