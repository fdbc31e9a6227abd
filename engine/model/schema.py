"""The input tables of ../shared/spec/data-model.md: column names, logical types, required flags.

Logical types: int64, int32, string, date, timestamp (UTC instant), bool, list<string>.
The ingest reader converts every file to these types; the generator writes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class Column:
    name: str
    type: str          # int64 | int32 | string | date | timestamp | bool | list<string>
    required: bool = False


TABLES = {
    "customers": (
        Column("customer_id", "int64", True),
        Column("first_name", "string"), Column("last_name", "string"),
        Column("email", "string"), Column("phone", "string"),
        Column("address", "string"), Column("city", "string"), Column("postal_code", "string"),
        Column("gender", "string"), Column("marital_status", "string"),
        Column("birth_date", "date"), Column("anniversary_date", "date"), Column("wedding_date", "date"),
        Column("joined_on", "date"),
        Column("loyalty_member", "bool"), Column("loyalty_points", "int64"),
        Column("origin_shop", "string"),
        Column("tags", "list<string>"),
        Column("email_opt_in", "bool"), Column("sms_opt_in", "bool"),
        Column("account_balance", "int64"),
        Column("active", "bool"),
    ),
    "purchases": (
        Column("customer_id", "int64", True),
        Column("purchased_at", "timestamp", True),
        Column("amount", "int64", True),
        Column("quantity", "int32"),
        Column("shop", "string"),
        Column("department", "string"), Column("metal", "string"), Column("brand", "string"),
        Column("strain", "string"), Column("inventory_group", "string"),
        Column("inventory_type", "string"), Column("product", "string"),
        Column("order_id", "string"),
    ),
    "visits": (
        Column("customer_id", "int64", True),
        Column("starts_at", "timestamp", True),
        Column("status", "string", True),
        Column("shop", "string"),
    ),
    "laybys": (
        Column("customer_id", "int64", True),
        Column("opened_on", "date", True),
        Column("due_on", "date", True),
        Column("balance", "int64", True),
        Column("status", "string", True),
    ),
}

TABLE_NAMES: Tuple[str, ...] = tuple(TABLES)
VISIT_STATUSES = ("completed", "booked", "cancelled", "no_show")
LAYBY_STATUSES = ("open", "closed")

# Profile fields a caller may ask for in preview / materialize / export.
PROFILE_FIELDS: Tuple[str, ...] = tuple(c.name for c in TABLES["customers"] if c.name != "customer_id")


def column(table: str, name: str) -> Column:
    """The Column spec of table.name (KeyError if unknown)."""
    for c in TABLES[table]:
        if c.name == name:
            return c
    raise KeyError(f"{table}.{name}")
