"""DuckDB peer: the independent reference a Segment is checked against, and the benchmark peer.

Every condition of engine/model/segment.py is translated to SQL over in-memory DuckDB tables.
Nothing here reads engine code other than the condition dataclasses: time ranges, local
dates, normalisation and file reading are done again, independently, so a bug in the
engine's versions cannot hide in both. Load-time precomputation (local dates of purchases
and visits, normalised text, month-day numbers) keeps queries fast at scale M.
"""
from __future__ import annotations

import calendar
import datetime as dt
import os
from pathlib import Path
from typing import Optional, Tuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from segments.engine.model import segment as S

# ---------------------------------------------------------------- input tables

_TS = pa.timestamp("us", tz="UTC")
_TYPES = {
    "customers": {
        "customer_id": pa.int64(), "first_name": pa.string(), "last_name": pa.string(),
        "email": pa.string(), "phone": pa.string(), "address": pa.string(), "city": pa.string(),
        "postal_code": pa.string(), "gender": pa.string(), "marital_status": pa.string(),
        "birth_date": pa.date32(), "anniversary_date": pa.date32(), "wedding_date": pa.date32(),
        "joined_on": pa.date32(), "loyalty_member": pa.bool_(), "loyalty_points": pa.int64(),
        "origin_shop": pa.string(), "tags": pa.list_(pa.string()), "email_opt_in": pa.bool_(),
        "sms_opt_in": pa.bool_(), "account_balance": pa.int64(), "active": pa.bool_(),
    },
    "purchases": {
        "customer_id": pa.int64(), "purchased_at": _TS, "amount": pa.int64(),
        "quantity": pa.int32(), "shop": pa.string(), "department": pa.string(),
        "metal": pa.string(), "brand": pa.string(), "strain": pa.string(),
        "inventory_group": pa.string(), "inventory_type": pa.string(), "product": pa.string(),
        "order_id": pa.string(),
    },
    "visits": {"customer_id": pa.int64(), "starts_at": _TS, "status": pa.string(), "shop": pa.string()},
    "laybys": {"customer_id": pa.int64(), "opened_on": pa.date32(), "due_on": pa.date32(),
               "balance": pa.int64(), "status": pa.string()},
}
_TEXT = ("first_name", "last_name", "email", "address", "city", "postal_code")
# Letters that carry no separable accent, folded to ASCII after lower-casing and stripping
# marks (the engine's documented choice: 'Łukasz' -> 'lukasz', 'Ærø' -> 'aero').
FOLD = (("ł", "l"), ("ø", "o"), ("æ", "ae"), ("œ", "oe"), ("ß", "ss"), ("đ", "d"), ("ð", "d"),
        ("þ", "th"), ("ı", "i"))


def _norm_macro() -> str:
    expr = "strip_accents(lower(s))"
    for a, b in FOLD:
        expr = f"replace({expr}, '{a}', '{b}')"
    return f"CREATE MACRO norm(s) AS {expr}"


def _read_file(path: Path, types: dict) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    csv_types = {k: (pa.string() if pa.types.is_list(t) else t) for k, t in types.items()}
    t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types=csv_types, strings_can_be_null=True))
    for name, typ in types.items():
        if pa.types.is_list(typ) and name in t.column_names:   # "a; b;" -> ["a", "b"]
            col = pa.array([None if v is None else [x.strip() for x in v.split(";") if x.strip()]
                            for v in t[name].cast(pa.string()).to_pylist()], type=typ)
            t = t.set_column(t.column_names.index(name), name, col)
    return t


def _conform(t: Optional[pa.Table], types: dict) -> pa.Table:
    """The table with exactly the canonical columns and types (absent columns are null)."""
    n = 0 if t is None else t.num_rows
    cols = {}
    for name, typ in types.items():
        if t is not None and name in t.column_names:
            col = t[name]
            if pa.types.is_timestamp(col.type) and col.type.tz is None:
                col = col.cast(pa.timestamp("us")).cast(pa.int64()).cast(_TS)
            cols[name] = col.cast(typ)
        else:
            cols[name] = pa.nulls(n, typ)
    return pa.table(cols)


def read_tables(folder) -> dict:
    """<table>.parquet | <table>.csv | <table>/ (parts) for each table, canonical types."""
    folder = Path(folder)
    out = {}
    for table, types in _TYPES.items():
        files = [folder / f"{table}.parquet", folder / f"{table}.csv"]
        files = [f for f in files if f.is_file()]
        if (folder / table).is_dir():
            files += sorted(p for p in (folder / table).iterdir()
                            if p.suffix in (".parquet", ".csv") and p.is_file())
        parts = [_conform(_read_file(f, types), types) for f in files]
        out[table] = pa.concat_tables(parts) if parts else _conform(None, types)
    return out


def _parquet_source(folder: Path, table: str) -> str:
    """SQL of a table's rows read from <table>.parquet and/or <table>/*.parquet, with the
    canonical columns and types (absent columns null)."""
    files = [folder / f"{table}.parquet"] if (folder / f"{table}.parquet").is_file() else []
    if (folder / table).is_dir():
        files += sorted(p for p in (folder / table).iterdir() if p.suffix == ".parquet")
    if not files:
        raise ValueError(f"{folder}: no Parquet files for {table} (the on-disk and Parquet peers read Parquet only)")
    have = set(pq.read_schema(files[0]).names)
    cols = [(f"CAST({n} AS {_duck_type(t)}) AS {n}" if n in have else f"CAST(NULL AS {_duck_type(t)}) AS {n}")
            for n, t in _TYPES[table].items()]
    listing = ", ".join(_q(str(f)) for f in files)
    return f"(SELECT {', '.join(cols)} FROM read_parquet([{listing}], union_by_name = true))"


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return "VARCHAR[]"
    return {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.string(): "VARCHAR", pa.bool_(): "BOOLEAN",
            pa.date32(): "DATE", _TS: "TIMESTAMPTZ"}[t]


# ---------------------------------------------------------------- calendar (independent of engine.timerange)

def local_today(as_of: dt.datetime, timezone: str) -> dt.date:
    """The as-of instant's calendar date in the zone."""
    from zoneinfo import ZoneInfo
    if as_of.tzinfo is None:
        raise ValueError("as_of must be aware")
    return as_of.astimezone(ZoneInfo(timezone)).date()


def month_shift(d: dt.date, months: int) -> dt.date:
    """d moved by whole months, the day clamped to the target month's length."""
    idx = d.year * 12 + (d.month - 1) + months
    year, month = idx // 12, idx % 12 + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _plus_days(d: dt.date, n: int) -> dt.date:
    o = d.toordinal() + n
    return dt.date.fromordinal(min(max(o, 1), dt.date.max.toordinal()))


def range_dates(r: S.TimeRange, today: dt.date) -> Tuple[Optional[dt.date], Optional[dt.date]]:
    """Closed [start, end] local dates of a range (None = unbounded)."""
    k = r.kind
    if k == "ever":
        return None, None
    if k == "today":
        return today, today
    if k == "yesterday":
        y = _plus_days(today, -1)
        return y, y
    if k == "last_week":
        this_monday = _plus_days(today, -today.weekday())
        return _plus_days(this_monday, -7), _plus_days(this_monday, -1)
    if k == "month_to_date":
        return dt.date(today.year, today.month, 1), today
    if k == "previous_month":
        last = _plus_days(dt.date(today.year, today.month, 1), -1)
        return dt.date(last.year, last.month, 1), last
    if k == "year_to_date":
        return dt.date(today.year, 1, 1), today
    if k == "last_n_days":
        return _plus_days(today, 1 - r.n), today
    if k == "last_n_months":
        return _plus_days(month_shift(today, -r.n), 1), today
    if k == "custom":
        def bound(b):
            if b is None or isinstance(b, dt.date):
                return b
            try:
                base = month_shift(today, b.months)
            except ValueError:  # beyond year 1..9999
                base = dt.date.min if b.months < 0 else dt.date.max
            return _plus_days(base, b.days)
        return bound(r.start), bound(r.end)
    raise ValueError(f"unknown range kind {k!r}")


def _leap(y: int) -> bool:
    return calendar.isleap(y)


def birthday_mds(mode: str, today: dt.date, month=None, days=None) -> Optional[list]:
    """month*100+day values of dates that celebrate on the chosen days (None: month mode)."""
    if mode in ("this_month", "month"):
        return None
    n = 1 if mode == "today" else days
    out = set()
    for i in range(n):
        d = _plus_days(today, i)
        out.add(d.month * 100 + d.day)
        if d.month == 2 and d.day == 28 and not _leap(d.year):
            out.add(229)
    return sorted(out)


# ---------------------------------------------------------------- SQL helpers

def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _qlist(values) -> str:
    return "(" + ", ".join(_q(v) for v in values) + ")"


def _cmp(expr: str, c: S.Cmp) -> str:
    if c.op == "between":
        return f"({expr} BETWEEN {c.a} AND {c.b})"
    return f"({expr} {'=' if c.op == '==' else c.op} {c.a})"


def _date_lit(d: dt.date) -> str:
    return f"DATE '{d.isoformat()}'"


def _digits(s: str) -> str:
    return "".join(ch for ch in s if "0" <= ch <= "9")


class _Ctx:
    """One evaluation: the as-of instant in micros and `today` in the dataset zone."""

    def __init__(self, as_of: dt.datetime, timezone: str, peer=None):
        self.as_of = as_of
        self.peer = peer          # saved segments and groups (in_segment, in_group)
        self.today = local_today(as_of, timezone)
        delta = as_of - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        self.micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds

    def range_pred(self, col: str, r: S.TimeRange) -> str:
        s, e = range_dates(r, self.today)
        preds = []
        if s is not None:
            preds.append(f"{col} >= {_date_lit(s)}")
        if e is not None:
            preds.append(f"{col} <= {_date_lit(e)}")
        return " AND ".join(preds) or "TRUE"


ACTIVE = "SELECT customer_id FROM customers WHERE _active"


def _line_preds(ctx: _Ctx, f: S.ProductFilter, r: S.TimeRange, refunds: bool) -> str:
    preds = [f"_us <= {ctx.micros}", ctx.range_pred("ld", r)]
    if not refunds:
        preds.append("amount >= 0")
    for field, values in f.fields:
        preds.append(f"{field} IN {_qlist(values)}")
    return " AND ".join(preds)


def _visit_preds(ctx: _Ctx, shops, r: S.TimeRange) -> str:
    preds = ["status = 'completed'", f"_us <= {ctx.micros}", ctx.range_pred("ld", r)]
    if shops:
        preds.append(f"shop IN {_qlist(shops)}")
    return " AND ".join(preds)


def _profile(pred: str) -> str:
    return f"{ACTIVE} AND ({pred})"


def _sql_all(c, ctx: _Ctx) -> str:
    return ACTIVE


def _sql_customers(c, ctx: _Ctx) -> str:
    if not c.ids:
        return _profile("FALSE")
    return _profile("customer_id IN (" + ", ".join(str(int(i)) for i in c.ids) + ")")


def _sql_search(c, ctx: _Ctx) -> str:
    needle = f"norm({_q(c.text)})"
    preds = []
    for f in c.fields:
        if f == "phone":
            d = _digits(c.text)
            if d:
                preds.append(f"contains(_n_phone, {_q(d)})")
        else:
            preds.append(f"contains(_n_{f}, {needle})")
    return _profile(" OR ".join(preds) or "FALSE")


def _sql_surname(c, ctx: _Ctx) -> str:
    return _profile(f"_n_last_name = norm({_q(c.text)})")


def _sql_birthday(c, ctx: _Ctx) -> str:
    col = "birth_date" if c.which == "birth" else "anniversary_date"
    if c.mode == "this_month":
        return _profile(f"month({col}) = {ctx.today.month}")
    if c.mode == "month":
        return _profile(f"month({col}) = {int(c.month)}")
    mds = birthday_mds(c.mode, ctx.today, c.month, c.days)
    return _profile(f"(month({col}) * 100 + day({col})) IN ({', '.join(map(str, mds))})")


def _sql_married_today(c, ctx: _Ctx) -> str:
    return _profile(f"wedding_date = {_date_lit(ctx.today)}")


def _sql_age(c, ctx: _Ctx) -> str:
    today = ctx.today
    md_today = today.month * 100 + today.day
    eff = "CASE WHEN _bmd = 229 THEN 228 ELSE _bmd END" if not _leap(today.year) else "_bmd"
    age = f"({today.year} - year(birth_date) - CASE WHEN {md_today} < ({eff}) THEN 1 ELSE 0 END)"
    return _profile(f"birth_date IS NOT NULL AND {_cmp(age, c.cmp)}")


def _sql_joined(c, ctx: _Ctx) -> str:
    return _profile(f"joined_on IS NOT NULL AND {ctx.range_pred('joined_on', c.range)}")


def _sql_loyalty_member(c, ctx: _Ctx) -> str:
    return _profile("loyalty_member")


def _sql_loyalty_points(c, ctx: _Ctx) -> str:
    return _profile(_cmp("loyalty_points", c.cmp))


def _sql_in_values(c, ctx: _Ctx) -> str:
    return _profile(f"{c.field} IN {_qlist(c.values)}")


def _sql_tags(c, ctx: _Ctx) -> str:
    fn = "list_has_any" if c.mode == "any" else "list_has_all"
    lst = "[" + ", ".join(_q(x) for x in c.tags) + "]::VARCHAR[]"
    return _profile(f"COALESCE({fn}(tags, {lst}), FALSE)")


def _sql_reachable(c, ctx: _Ctx) -> str:
    pred = {"has_email": "_has_email", "has_phone": "_has_phone",
            "email_opt_in": "email_opt_in", "sms_opt_in": "sms_opt_in"}[c.channel]
    return _profile(f"COALESCE({pred}, FALSE)")


def _sql_account_balance(c, ctx: _Ctx) -> str:
    return _profile(_cmp("account_balance", c.cmp))


def _sql_overdue_layby(c, ctx: _Ctx) -> str:
    td = _date_lit(ctx.today)
    return _profile("customer_id IN (SELECT customer_id FROM laybys WHERE status = 'open' "
                    f"AND balance > 0 AND due_on < {td} AND opened_on <= {td})")


def _sql_bought(c, ctx: _Ctx) -> str:
    return _profile(f"customer_id IN (SELECT customer_id FROM purchases WHERE "
                    f"{_line_preds(ctx, c.filter, c.range, refunds=False)})")


def _sql_spend_etc(c, ctx: _Ctx) -> str:
    t = type(c)
    agg = "SUM(amount)" if t is S.Spend else "COUNT(*)"
    lines = _line_preds(ctx, c.filter, c.range, refunds=t is S.Spend)
    return (f"SELECT c.customer_id FROM customers c LEFT JOIN (SELECT customer_id, {agg} AS v "
            f"FROM purchases WHERE {lines} GROUP BY customer_id) a ON a.customer_id = c.customer_id "
            f"WHERE c._active AND {_cmp('COALESCE(a.v, 0)', c.cmp)}")


def _sql_visited(c, ctx: _Ctx) -> str:
    return (f"SELECT c.customer_id FROM customers c LEFT JOIN (SELECT customer_id, COUNT(*) AS v "
            f"FROM visits WHERE {_visit_preds(ctx, c.shops, c.range)} GROUP BY customer_id) a "
            f"ON a.customer_id = c.customer_id WHERE c._active AND {_cmp('COALESCE(a.v, 0)', c.cmp)}")


def _sql_upcoming_appointment(c, ctx: _Ctx) -> str:
    shops = f" AND shop IN {_qlist(c.shops)}" if c.shops else ""
    return _profile(f"customer_id IN (SELECT customer_id FROM visits WHERE status = 'booked' "
                    f"AND _us > {ctx.micros}{shops})")


def _sql_all_of_etc(c, ctx: _Ctx) -> str:
    t = type(c)
    op = " INTERSECT " if t is S.AllOf else " UNION "
    return op.join(f"(SELECT customer_id FROM ({cond_sql(x, ctx)}))" for x in c.children)


def _sql_not(c, ctx: _Ctx) -> str:
    return f"({ACTIVE}) EXCEPT (SELECT customer_id FROM ({cond_sql(c.child, ctx)}))"


# ---------------------------------------------------------------- behaviour (shared/spec behaviour.md)

def _event_sql(ctx: _Ctx, ev: S.Event, r: S.TimeRange) -> str:
    """(customer_id, _us, ld) of the visible events of kind ev dated in r."""
    if ev.kind == "visited":
        return f"SELECT customer_id, _us, ld FROM visits WHERE {_visit_preds(ctx, ev.shops, r)}"
    return f"SELECT customer_id, _us, ld FROM purchases WHERE {_line_preds(ctx, ev.filter, r, refunds=False)}"


def _sql_first_last(c, ctx: _Ctx) -> str:
    agg = "MIN(ld)" if type(c) is S.FirstPurchase else "MAX(ld)"
    return _profile(f"customer_id IN (SELECT customer_id FROM (SELECT customer_id, {agg} AS d FROM purchases "
                    f"WHERE {_line_preds(ctx, c.filter, S.EVER, refunds=False)} GROUP BY customer_id) "
                    f"WHERE {ctx.range_pred('d', c.range)})")


def _sql_regularly(c: S.Regularly, ctx: _Ctx) -> str:
    today = ctx.today
    if c.period == "week":
        start = _plus_days(today, -today.weekday() - 7 * (c.periods - 1))
        bucket = "date_trunc('week', ld)"    # ISO weeks start on Monday
    else:
        start = month_shift(dt.date(today.year, today.month, 1), -(c.periods - 1))
        bucket = "date_trunc('month', ld)"
    ev = _event_sql(ctx, c.event, S.TimeRange("custom", start=start, end=today))
    return _profile(f"customer_id IN (SELECT customer_id FROM (SELECT customer_id, {bucket} AS p, COUNT(*) AS k "
                    f"FROM ({ev}) GROUP BY 1, 2) WHERE k >= {c.min_per_period} GROUP BY customer_id "
                    f"HAVING COUNT(*) >= {c.min_periods})")


def _sql_sequence(c: S.Sequence, ctx: _Ctx) -> str:
    e1, e2 = _event_sql(ctx, c.first, c.range), _event_sql(ctx, c.then, S.EVER)
    near = f"b.customer_id = a.customer_id AND b._us > a._us AND date_diff('day', a.ld, b.ld) <= {c.within_days}"
    neg = "NOT " if c.negate else ""
    return _profile(f"customer_id IN (SELECT a.customer_id FROM ({e1}) a WHERE {neg}EXISTS "
                    f"(SELECT 1 FROM ({e2}) b WHERE {near}))")


def _orders_sql(ctx: _Ctx, f: S.ProductFilter) -> str:
    """(customer_id, ld, net, m) per order as of ctx: m = it holds a matching non-refund line."""
    match = " AND ".join(["amount >= 0"] + [f"COALESCE({k} IN {_qlist(v)}, FALSE)" for k, v in f.fields])
    return (f"SELECT customer_id, arg_min(ld, _us) AS ld, SUM(amount) AS net, BOOL_OR({match}) AS m "
            f"FROM purchases WHERE _us <= {ctx.micros} "
            f"GROUP BY customer_id, COALESCE('id:' || order_id, 'at:' || CAST(_us AS VARCHAR))")


def _order_count_sql(ctx: _Ctx, f: S.ProductFilter, r: S.TimeRange) -> str:
    return (f"SELECT customer_id, COUNT(*) AS v FROM ({_orders_sql(ctx, f)}) "
            f"WHERE m AND {ctx.range_pred('ld', r)} GROUP BY customer_id")


def _aov_sql(ctx: _Ctx, r: S.TimeRange) -> str:
    """(customer_id, v): the net sum over the orders in r floored-divided by their number."""
    return (f"SELECT customer_id, CAST((s - (((s % k) + k) % k)) // k AS BIGINT) AS v FROM "
            f"(SELECT customer_id, SUM(net) AS s, COUNT(*) AS k FROM ({_orders_sql(ctx, S.NO_FILTER)}) "
            f"WHERE {ctx.range_pred('ld', r)} GROUP BY customer_id)")


def _sql_order_count(c: S.OrderCount, ctx: _Ctx) -> str:
    return (f"SELECT c.customer_id FROM customers c LEFT JOIN ({_order_count_sql(ctx, c.filter, c.range)}) a "
            f"ON a.customer_id = c.customer_id WHERE c._active AND {_cmp('COALESCE(a.v, 0)', c.cmp)}")


def _sql_average_order_value(c: S.AverageOrderValue, ctx: _Ctx) -> str:
    return _profile(f"customer_id IN (SELECT customer_id FROM ({_aov_sql(ctx, c.range)}) WHERE {_cmp('v', c.cmp)})")


def _value_sql(ctx: _Ctx, v: S.Value) -> str:
    """(customer_id, v) for every customer; NULL is the lowest value."""
    if v.key == "loyalty_points":
        return "SELECT customer_id, loyalty_points AS v FROM customers"
    if v.key == "order_count":
        inner, zero = _order_count_sql(ctx, v.filter, v.range), "0"
    elif v.key == "spend":
        inner, zero = (f"SELECT customer_id, SUM(amount) AS v FROM purchases WHERE "
                       f"{_line_preds(ctx, v.filter, v.range, refunds=True)} GROUP BY 1"), "0"
    elif v.key == "purchase_count":
        inner, zero = (f"SELECT customer_id, COUNT(*) AS v FROM purchases WHERE "
                       f"{_line_preds(ctx, v.filter, v.range, refunds=False)} GROUP BY 1"), "0"
    else:
        inner, zero = (f"SELECT customer_id, MAX(ld) AS v FROM purchases WHERE "
                       f"{_line_preds(ctx, v.filter, v.range, refunds=False)} GROUP BY 1"), "NULL"
    return (f"SELECT c.customer_id, COALESCE(a.v, {zero}) AS v FROM customers c LEFT JOIN ({inner}) a "
            f"ON a.customer_id = c.customer_id")


def _pct_sql(ctx: _Ctx, v: S.Value, among) -> str:
    """(customer_id, pct) over the population (active customers matching among)."""
    pop = cond_sql(among, ctx) if among is not None else ACTIVE
    return (f"SELECT x.customer_id, (100 * (rank() OVER (ORDER BY x.v ASC NULLS FIRST) - 1)) "
            f"// COUNT(*) OVER () AS pct FROM ({_value_sql(ctx, v)}) x "
            f"WHERE x.customer_id IN (SELECT customer_id FROM ({pop}))")


def _sql_percentile(c: S.Percentile, ctx: _Ctx) -> str:
    return f"SELECT customer_id FROM ({_pct_sql(ctx, c.of, c.among)}) WHERE {_cmp('pct', c.cmp)}"


def _sql_rfm(c: S.Rfm, ctx: _Ctx) -> str:
    parts = []
    for key, cmp in (("last_purchase", c.r), ("purchase_count", c.f), ("spend", c.m)):
        q = _pct_sql(ctx, S.Value(key, c.filter, c.range), c.among)
        test = "TRUE" if cmp is None else _cmp("(1 + pct // 20)", cmp)
        parts.append(f"(SELECT customer_id FROM ({q}) WHERE {test})")
    return " INTERSECT ".join(parts)


_M64 = "18446744073709551616::UHUGEINT"


def _fnv1a64(text: str) -> int:
    h = 0xcbf29ce484222325
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) % (1 << 64)
    return h


def _sql_random_bucket(c: S.RandomBucket, ctx: _Ctx) -> str:
    def m64(expr):
        return f"CAST(({expr}) % {_M64} AS UBIGINT)"
    x0 = f"xor(CAST((customer_id::HUGEINT + 18446744073709551616) % 18446744073709551616 AS UBIGINT), " \
         f"{_fnv1a64(c.salt)}::UBIGINT)"
    q = f"SELECT customer_id, {m64(f'({x0})::UHUGEINT + 11400714819323198485::UHUGEINT')} AS x FROM customers WHERE _active"
    q = f"SELECT customer_id, {m64('xor(x, x >> 30)::UHUGEINT * 13787848793156543929::UHUGEINT')} AS x FROM ({q})"
    q = f"SELECT customer_id, {m64('xor(x, x >> 27)::UHUGEINT * 10723151780598845931::UHUGEINT')} AS x FROM ({q})"
    q = f"SELECT customer_id, xor(x, x >> 31) % 10000 AS b FROM ({q})"
    return f"SELECT customer_id FROM ({q}) WHERE {_cmp('b', c.cmp)}"


def _sql_in_segment(c: S.InSegment, ctx: _Ctx) -> str:
    body, _ = ctx.peer._final(ctx.peer.saved_segments[c.name], ctx.as_of)
    return f"SELECT customer_id FROM ({body})"


def _sql_in_group(c: S.InGroup, ctx: _Ctx) -> str:
    table = getattr(ctx.peer, "group_tables", {}).get(c.name)
    if table is not None:   # a large group: a table of its ids, not a literal list to parse
        return _profile(f"customer_id IN (SELECT customer_id FROM {table})")
    ids = sorted(ctx.peer.groups[c.name])
    return _profile("customer_id IN (" + ", ".join(str(int(i)) for i in ids) + ")" if ids else "FALSE")


# condition class -> SQL of its matching active customer_ids (engine.model.kinds lists the classes)
CONDITION_SQL = {
    S.All: _sql_all,
    S.Customers: _sql_customers,
    S.Search: _sql_search,
    S.Surname: _sql_surname,
    S.Birthday: _sql_birthday,
    S.MarriedToday: _sql_married_today,
    S.Age: _sql_age,
    S.Joined: _sql_joined,
    S.LoyaltyMember: _sql_loyalty_member,
    S.LoyaltyPoints: _sql_loyalty_points,
    S.InValues: _sql_in_values,
    S.Tags: _sql_tags,
    S.Reachable: _sql_reachable,
    S.AccountBalance: _sql_account_balance,
    S.OverdueLayby: _sql_overdue_layby,
    S.Bought: _sql_bought,
    S.Spend: _sql_spend_etc,
    S.PurchaseCount: _sql_spend_etc,
    S.Visited: _sql_visited,
    S.UpcomingAppointment: _sql_upcoming_appointment,
    S.FirstPurchase: _sql_first_last,
    S.LastPurchase: _sql_first_last,
    S.Regularly: _sql_regularly,
    S.Sequence: _sql_sequence,
    S.OrderCount: _sql_order_count,
    S.AverageOrderValue: _sql_average_order_value,
    S.Percentile: _sql_percentile,
    S.Rfm: _sql_rfm,
    S.RandomBucket: _sql_random_bucket,
    S.InSegment: _sql_in_segment,
    S.InGroup: _sql_in_group,
    S.AllOf: _sql_all_of_etc,
    S.AnyOf: _sql_all_of_etc,
    S.Not: _sql_not,
}


def cond_sql(c: S.Condition, ctx: _Ctx) -> str:
    """A query yielding the distinct active customer_ids matching condition c."""
    fn = CONDITION_SQL.get(type(c))
    if fn is None:
        raise TypeError(f"unknown condition {c!r}")
    return fn(c, ctx)


def rank_sql(o: S.OrderBy, ctx: _Ctx) -> str:
    """A query of (customer_id, v) for every customer with a ranking value (absent = no row or NULL)."""
    if o.key == "loyalty_points":
        return "SELECT customer_id, loyalty_points AS v FROM customers"
    if o.key == "spend":
        lines = _line_preds(ctx, o.filter, o.range, refunds=True)
        return f"SELECT customer_id, SUM(amount) AS v FROM purchases WHERE {lines} GROUP BY customer_id"
    if o.key == "purchase_count":
        lines = _line_preds(ctx, o.filter, o.range, refunds=False)
        return f"SELECT customer_id, COUNT(*) AS v FROM purchases WHERE {lines} GROUP BY customer_id"
    if o.key == "order_count":
        return _order_count_sql(ctx, o.filter, o.range)
    if o.key == "average_order_value":
        return _aov_sql(ctx, o.range)
    if o.key == "last_purchase":
        lines = _line_preds(ctx, o.filter, o.range, refunds=False)
        return f"SELECT customer_id, MAX(ld) AS v FROM purchases WHERE {lines} GROUP BY customer_id"
    raise ValueError(f"unknown order key {o.key!r}")


# ---------------------------------------------------------------- the peer

class DuckPeer:
    """In-memory DuckDB copy of one dataset that answers segments with plain SQL."""

    def __init__(self, tables: dict, timezone: str, threads: Optional[int] = None):
        self.timezone = timezone
        self.saved_segments: dict = {}   # name -> Segment (in_segment)
        self.groups: dict = {}           # name -> set of customer_ids (in_group)
        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET threads = {int(threads or os.cpu_count() or 1)}")
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET preserve_insertion_order = false")   # every answer is ordered explicitly
        t = {name: _conform(tables.get(name), types) for name, types in _TYPES.items()}
        t["purchases"] = self._with_local(t["purchases"], "purchased_at")
        t["visits"] = self._with_local(t["visits"], "starts_at")
        for name, tab in t.items():
            self.con.register(f"_in_{name}", tab)
        self.con.execute(_norm_macro())
        norm = ", ".join(f"norm({f}) AS _n_{f}" for f in _TEXT)
        self.con.execute(f"""CREATE TABLE customers AS SELECT *, COALESCE(active, TRUE) AS _active,
            {norm}, regexp_replace(phone, '[^0-9]', '', 'g') AS _n_phone,
            month(birth_date) * 100 + day(birth_date) AS _bmd,
            COALESCE(regexp_matches(email, '\\S'), FALSE) AS _has_email,
            COALESCE(regexp_matches(phone, '\\S'), FALSE) AS _has_phone
            FROM _in_customers""")
        self.con.execute("CREATE TABLE purchases AS SELECT * FROM _in_purchases")
        self.con.execute("CREATE TABLE visits AS SELECT * FROM _in_visits")
        self.con.execute("CREATE TABLE laybys AS SELECT * FROM _in_laybys")
        for name in t:
            self.con.unregister(f"_in_{name}")

    @classmethod
    def _open(cls, path: str, timezone: str, threads: Optional[int], memory_limit: str) -> "DuckPeer":
        self = cls.__new__(cls)
        self.timezone = timezone
        self.saved_segments, self.groups = {}, {}
        self.con = duckdb.connect(path)
        self.con.execute(f"SET threads = {int(threads or os.cpu_count() or 1)}")
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute("SET TimeZone = 'UTC'")
        return self

    @classmethod
    def on_disk(cls, folder, timezone: str, db_path, threads: Optional[int] = None,
                memory_limit: str = "8GB", log=print) -> "DuckPeer":
        """A peer over a DuckDB database file, built from the folder's Parquet files by
        DuckDB itself (nothing passes through Python memory) and kept for the next run: for
        datasets whose tables do not fit in memory. The same columns as the in-memory peer;
        local dates by DuckDB's ICU time zones (_local_date_sql)."""
        import time as _time
        folder, db_path = Path(folder), Path(db_path)
        done = db_path.with_name(db_path.name + ".complete")
        if not done.exists():
            db_path.unlink(missing_ok=True)
            db_path.with_name(db_path.name + ".wal").unlink(missing_ok=True)
        self = cls._open(str(db_path), timezone, threads, memory_limit)
        if done.exists():
            self.disk_info = cls._disk_info(db_path, done, reused=True)
            return self
        t0 = _time.perf_counter()
        self._define(folder, timezone, "TABLE", log)
        self.con.execute("CHECKPOINT")
        done.write_text(f"{_time.perf_counter() - t0:.1f}\n")
        self.disk_info = cls._disk_info(db_path, done, reused=False)
        return self

    @classmethod
    def over_parquet(cls, folder, timezone: str, threads: Optional[int] = None, memory_limit: str = "4GB",
                     temp_directory=None, log=print) -> "DuckPeer":
        """A peer whose tables are views over the folder's Parquet files: nothing is loaded
        or written (at L a database file would take ~8 GB of disk and ~10 minutes to build);
        each query reads the columns it needs from the files. The same columns as the
        in-memory peer; local dates by DuckDB's ICU time zones (_local_date_sql)."""
        self = cls._open(":memory:", timezone, threads, memory_limit)
        if temp_directory is not None:
            self.con.execute(f"SET temp_directory = {_q(str(temp_directory))}")
        self._define(Path(folder), timezone, "VIEW", log)
        return self

    def _define(self, folder: Path, timezone: str, kind: str, log) -> None:
        """CREATE TABLE (kind "TABLE") or VIEW of customers, purchases, visits and laybys
        from the folder's Parquet files, with the derived columns the SQL reads."""
        import time as _time
        self.con.execute(_norm_macro())
        norm = ", ".join(f"norm({f}) AS _n_{f}" for f in _TEXT)
        self.con.execute(f"""CREATE {kind} customers AS SELECT *, COALESCE(active, TRUE) AS _active,
            {norm}, regexp_replace(phone, '[^0-9]', '', 'g') AS _n_phone,
            month(birth_date) * 100 + day(birth_date) AS _bmd,
            COALESCE(regexp_matches(email, '\\S'), FALSE) AS _has_email,
            COALESCE(regexp_matches(phone, '\\S'), FALSE) AS _has_phone
            FROM {_parquet_source(folder, 'customers')}""")
        for table, col in (("purchases", "purchased_at"), ("visits", "starts_at")):
            t1 = _time.perf_counter()
            src = _parquet_source(folder, table)
            ld, how = self._local_date_sql(src, col, timezone)
            self.con.execute(f"""CREATE {kind} {table} AS SELECT *, {ld} AS ld
                FROM (SELECT *, epoch_us({col}) AS _us FROM {src})""")
            log(f"duckdb: {table} {'loaded' if kind == 'TABLE' else 'defined'} in "
                f"{_time.perf_counter() - t1:.0f} s (local dates: {how})")
        self.con.execute(f"CREATE {kind} laybys AS SELECT * FROM {_parquet_source(folder, 'laybys')}")

    _BUCKET_US = 900_000_000        # 15 minutes: every offset change of the tz database since 1970 falls on one
    _MAX_BUCKETS = 4_000_000        # ~114 years of them; a wider span converts per line
    _MAX_RUNS = 1_000               # offset changes written into one CASE

    def _local_date_sql(self, src: str, col: str, timezone: str) -> Tuple[str, str]:
        """(SQL of a row's local date from its `_us`, how it is computed). The zone's UTC
        offset is asked of DuckDB's time zones at both ends of every 15-minute UTC bucket
        between the column's first and last instant; when no offset changes inside a
        bucket, the runs of equal offsets become one CASE on _us (one ICU conversion per
        bucket instead of one per line, which cost ~1 s per million lines on 2 cores).
        Otherwise (or for a span too wide) DuckDB converts each line."""
        per_line = f"CAST(timezone({_q(timezone)}, {col}) AS DATE)", "ICU per line"
        B = self._BUCKET_US
        lo, hi = self.con.execute(f"SELECT min(epoch_us({col})), max(epoch_us({col})) FROM {src}").fetchone()
        if lo is None:
            return per_line
        blo, bhi = lo // B, hi // B              # Python's // floors
        if bhi - blo + 1 > self._MAX_BUCKETS:
            return per_line
        tz = _q(timezone)
        rows = self.con.execute(f"""SELECT b, off FROM (
            SELECT b, off, off_end, lag(off) OVER (ORDER BY b) AS prev FROM (SELECT b,
                epoch_us(timezone({tz}, make_timestamptz(b * {B}))) - b * {B} AS off,
                epoch_us(timezone({tz}, make_timestamptz(b * {B} + {B - 1}))) - (b * {B} + {B - 1}) AS off_end
                FROM range({blo}, {bhi + 1}) r(b)))
            WHERE prev IS NULL OR off <> prev OR off <> off_end ORDER BY b""").fetchall()
        bad = self.con.execute(f"""SELECT count(*) FROM range({blo}, {bhi + 1}) r(b) WHERE
            epoch_us(timezone({tz}, make_timestamptz(b * {B}))) - b * {B} <>
            epoch_us(timezone({tz}, make_timestamptz(b * {B} + {B - 1}))) - (b * {B} + {B - 1})""").fetchone()[0]
        if bad or len(rows) > self._MAX_RUNS:
            return per_line
        off = str(int(rows[0][1]))
        if len(rows) > 1:
            whens = " ".join(f"WHEN _us < {int(rows[i + 1][0]) * B} THEN {int(rows[i][1])}" for i in range(len(rows) - 1))
            off = f"CASE {whens} ELSE {int(rows[-1][1])} END"
        return f"CAST(make_timestamp(_us + {off}) AS DATE)", f"zone offsets per 15-minute bucket, {len(rows)} run(s)"

    @staticmethod
    def _disk_info(db_path: Path, done: Path, reused: bool) -> dict:
        """What the on-disk peer is: its file, size, the seconds its build took (recorded
        beside it when it was built), whether this run reused it."""
        try:
            build_s = float(done.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            build_s = None
        return {"database": str(db_path), "database_bytes": db_path.stat().st_size,
                "build_s": build_s, "reused": reused}

    def _with_local(self, tab: pa.Table, col: str) -> pa.Table:
        """Add _us (UTC micros) and ld (the local calendar date in the dataset zone)."""
        ts = tab[col]
        local = pc.local_timestamp(ts.cast(pa.timestamp("us", tz=self.timezone)))
        tab = tab.append_column("_us", ts.cast(pa.int64()))
        return tab.append_column("ld", local.cast(pa.date32()))

    @classmethod
    def from_folder(cls, folder, timezone: str, threads: Optional[int] = None) -> "DuckPeer":
        """Read a dataset folder (Parquet / CSV / part folders) with pyarrow and load it."""
        return cls(read_tables(folder), timezone, threads)

    def close(self) -> None:
        self.con.close()

    def set_group(self, name: str, ids) -> None:
        """A frozen group's members for in_group, kept as a table of ids (a literal list of
        a large group would cost DuckDB more to parse than to answer)."""
        self.groups[name] = {int(x) for x in ids}
        if not hasattr(self, "group_tables"):
            self.group_tables = {}
        table = f"_group_{len(self.group_tables)}"
        self.con.register("_group_ids", pa.table({"customer_id": pa.array(sorted(self.groups[name]), pa.int64())}))
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT customer_id FROM _group_ids")
        self.con.unregister("_group_ids")
        self.group_tables[name] = table

    # ------------------------------------------------------------ segments
    def _final(self, seg: S.Segment, as_of: dt.datetime) -> Tuple[str, str]:
        """(query of (customer_id, v) over the result set, its ORDER BY clause); v NULL unranked."""
        ctx = _Ctx(as_of, self.timezone, self)
        exc = cond_sql(seg.exclude, ctx) if seg.exclude is not None else f"{ACTIVE} AND FALSE"
        parts = [f"inc AS ({cond_sql(seg.include, ctx)})", f"exc AS ({exc})",
                 "base AS (SELECT customer_id FROM inc EXCEPT SELECT customer_id FROM exc)"]
        if seg.order_by is not None:
            o = seg.order_by
            parts.append(f"rk AS ({rank_sql(o, ctx)})")
            zero = "0" if o.key in ("spend", "purchase_count", "order_count") else "NULL"
            val = f"COALESCE(rk.v, {zero})"
            direction = "DESC" if o.descending else "ASC"
            order = f"ORDER BY v {direction} NULLS LAST, customer_id ASC"
        else:
            parts.append("rk AS (SELECT NULL::BIGINT AS customer_id, NULL AS v WHERE FALSE)")
            val, order = "NULL", "ORDER BY customer_id ASC"
        lim = f" LIMIT {int(seg.limit)}" if seg.limit is not None else ""
        parts.append(f"top AS (SELECT b.customer_id, {val} AS v FROM base b LEFT JOIN rk "
                     f"ON rk.customer_id = b.customer_id {order}{lim})")
        body = "SELECT customer_id, v FROM top"
        if seg.append:
            app = " UNION ".join(f"(SELECT customer_id FROM ({cond_sql(a, ctx)}))" for a in seg.append)
            parts.append(f"app AS (({app}) EXCEPT (SELECT customer_id FROM exc) "
                         f"EXCEPT (SELECT customer_id FROM top))")
            body += (f" UNION ALL SELECT a.customer_id, {val} AS v FROM app a LEFT JOIN rk "
                     f"ON rk.customer_id = a.customer_id")
        return "WITH " + ",\n".join(parts) + "\n" + body, order

    def sql(self, segment: S.Segment, as_of: dt.datetime) -> str:
        """The SQL text giving the result customer_ids and ranking values in result order."""
        body, order = self._final(segment, as_of)
        return f"SELECT customer_id, v FROM ({body}) {order}"

    def ranked(self, segment: S.Segment, as_of: dt.datetime) -> list:
        """[(customer_id, ranking value or None)] in result order."""
        return self.con.execute(self.sql(segment, as_of)).fetchall()

    def result(self, segment: S.Segment, as_of: dt.datetime) -> list:
        """customer_ids in result order (ranking order, else ascending customer_id)."""
        return [r[0] for r in self.ranked(segment, as_of)]

    def count(self, segment: S.Segment, as_of: dt.datetime) -> Tuple[int, int, int]:
        """(count, email_reachable, sms_reachable)."""
        body, _ = self._final(segment, as_of)
        row = self.con.execute(
            f"SELECT COUNT(*), COUNT(*) FILTER (WHERE c._has_email AND COALESCE(c.email_opt_in, FALSE)), "
            f"COUNT(*) FILTER (WHERE c._has_phone AND COALESCE(c.sms_opt_in, FALSE)) "
            f"FROM ({body}) f JOIN customers c ON c.customer_id = f.customer_id").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def ids(self, cond: S.Condition, as_of: dt.datetime) -> set:
        """The set of customer_ids matching one condition."""
        ctx = _Ctx(as_of, self.timezone, self)
        return {r[0] for r in self.con.execute(cond_sql(cond, ctx)).fetchall()}
