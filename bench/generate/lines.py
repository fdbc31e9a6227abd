"""Activity tables of one generated chunk: purchase lines (from a product catalog), visits,
laybys. Each expands engine/generate_tables.Activity into rows, vectorised, rows shuffled.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import vocab as V
from .shapes import SHAPES, Shape, Vocab, vocab
from .tables import (DISPENSARY_SKU_SHARE, REFUND, Activity, Calendar,
                              InverseCdf, _force, _pick, _take, _window_days, arrow_schema)

ATTRIBUTES = ("department", "metal", "brand", "strain", "inventory_group", "inventory_type",
              "product")


@dataclass(frozen=True)
class Catalog:
    """shape.skus products: string attributes (nulls where a POS leaves them empty), prices,
    and per customer kind (jewellery, dispensary, both, bead/charm collector) the SKUs on
    offer with their popularity CDF; `vocab` the shape's value lists (shops too)."""
    attrs: dict              # attribute name -> pa.Array of shape.skus strings
    price: np.ndarray        # cents
    multi: np.ndarray        # sold by several units (beads, charms, dispensary)
    groups: tuple            # kind -> (sku indices, InverseCdf of their popularity)
    vocab: Vocab


def make_catalog(rng, shape: Shape = SHAPES["default"]) -> Catalog:
    """The product catalog shared by every chunk of a dataset. Brands and strains are drawn
    uniformly, or by Zipf weights when shape.value_zipf > 0 (separate code paths, so the
    default shape's draws are today's)."""
    voc = vocab(shape)
    n = shape.skus
    disp = rng.random(n) < DISPENSARY_SKU_SHARE
    dept = _pick(rng, n, [w for _, w, _, _ in voc.departments])
    dept_names = [d for d, _, _, _ in voc.departments]
    metal = np.full(n, len(voc.metals))
    for d, name in enumerate(dept_names):
        rows = np.nonzero(dept == d)[0]
        metal[rows] = _pick(rng, len(rows), voc.metal_weights[name])
    jb, db = len(voc.jewellery_brands), len(voc.dispensary_brands)
    if voc.brand_weights is None:
        brand = np.where(disp, jb + rng.integers(0, db, n), rng.integers(0, jb, n))
    else:
        wj, wd = voc.brand_weights
        brand = np.where(disp, jb + InverseCdf(wd)(rng.random(n)), InverseCdf(wj)(rng.random(n)))
    brand_null = np.where(disp, rng.random(n) < 0.05, rng.random(n) >= 0.35)

    median = np.array([m for _, _, m, _ in voc.departments])[dept]
    sigma = np.array([s for _, _, _, s in voc.departments])[dept]
    median = np.where(disp, V.DISPENSARY_PRICE[0], median)
    sigma = np.where(disp, V.DISPENSARY_PRICE[1], sigma)
    price = np.maximum(rng.lognormal(np.log(median), sigma), 100)
    price = np.where(rng.random(n) < 0.6, np.round(price / 100) * 100 - 1, np.round(price))

    codes = np.sort(rng.choice(max(200_000, 20 * n), n, replace=False))
    dept_null = disp | (rng.random(n) < 0.02)          # draws in today's order
    if voc.strain_weights is None:
        strain = rng.integers(0, len(voc.strains), n)
    else:
        strain = InverseCdf(voc.strain_weights)(rng.random(n))
    attrs = {
        "department": _take(dept_names, dept, dept_null),
        "metal": _take(voc.metals, metal, disp),
        "brand": _take(voc.jewellery_brands + voc.dispensary_brands, brand, brand_null),
        "strain": _take(voc.strains, strain, ~disp | (rng.random(n) < 0.2)),
        "inventory_group": _take(V.INVENTORY_GROUPS, rng.integers(0, len(V.INVENTORY_GROUPS), n),
                                 ~disp | (rng.random(n) < 0.03)),
        "inventory_type": _take(V.INVENTORY_TYPES, rng.integers(0, len(V.INVENTORY_TYPES), n),
                                ~disp | (rng.random(n) < 0.10)),
        "product": pa.array([f"SKU-{c:06d}" for c in codes], pa.string()),
    }
    popularity = 1.0 / (rng.permutation(n) + 1.0) ** shape.sku_zipf
    beads_charms = ~disp & np.isin(dept, [dept_names.index(d) for d in ("beads", "charms") if d in dept_names])
    groups = []
    for member in (~disp, disp, np.ones(n, bool), beads_charms):
        idx = np.nonzero(member)[0]
        groups.append((idx, InverseCdf(popularity[idx])))
    multi = disp | beads_charms
    return Catalog(attrs, price.astype(np.int64), multi, tuple(groups), voc)


def purchases_chunk(rng, act: Activity, cal: Calendar, cat: Catalog) -> pa.Table:
    """Sale lines of a chunk's customers: weighted days, heavy-tailed amounts, ~3% refunds."""
    cust = np.repeat(np.arange(len(act.ids)), act.n_purchases)
    n = len(cust)
    day = _window_days(rng, cal, act.lo[cust], act.hi[cust]) + cal.start_day
    second = np.where(rng.random(n) < 0.9, 43_200 + rng.integers(0, 43_200, n),
                      rng.integers(0, 86_400, n))
    t = day * 86_400 + second

    kind = act.kind[cust]
    group = np.where((kind == 3) & (rng.random(n) >= 0.55), 0, kind)
    u = rng.random(n)
    sku = np.zeros(n, np.int64)
    for g, (idx, draw) in enumerate(cat.groups):
        rows = group == g
        sku[rows] = idx[draw(u[rows])]
    qty = 1 + (rng.random(n) < 0.03)
    multi = np.nonzero(cat.multi[sku])[0]
    qty[multi] = np.minimum(rng.geometric(0.55, len(multi)), 20)
    factor = np.ones(n)
    discounted = np.nonzero(rng.random(n) < 0.25)[0]
    factor[discounted] = rng.uniform(0.7, 0.95, len(discounted))
    amount = np.round(cat.price[sku] * qty * factor).astype(np.int64)

    # Refunds: most copy the customer's previous line (same SKU, quantity, amount), dated
    # after it; the rest return something bought before the window.
    refund = rng.random(n) < REFUND
    match = np.nonzero(refund)[0]
    match = match[match > 0]
    match = match[(cust[match - 1] == cust[match]) & (rng.random(len(match)) < 0.6)]
    src = match - 1
    sku[match], qty[match], amount[match] = sku[src], qty[src], amount[src]
    anchor_end = cal.anchor_day * 86_400 + 86_399
    t[match] = np.minimum(t[src] + rng.integers(3_600, 30 * 86_400, len(src)), anchor_end)
    amount[refund] = -amount[refund]
    qty[refund] = -qty[refund]
    amount[~refund & (rng.random(n) < 0.004)] = 0                   # free gifts

    shop = act.home[cust]                                          # 75% at the home shop
    away = np.nonzero(rng.random(n) >= 0.75)[0]
    shop[away] = _pick(rng, len(away), cat.vocab.shop_weights)
    shop_null = rng.random(n) < 0.01
    qty_null = rng.random(n) < 0.02
    product_null = rng.random(n) < 0.01

    p = rng.permutation(n)
    sku32 = sku[p].astype(np.int32)
    cols = {
        "customer_id": pa.array(act.ids[cust[p]], pa.int64()),
        "purchased_at": pa.array(t[p] * 1_000_000, pa.timestamp("us", tz="UTC")),
        "amount": pa.array(amount[p], pa.int64()),
        "quantity": pa.array(qty[p].astype(np.int32), pa.int32(), mask=qty_null[p]),
        "shop": _take(cat.vocab.shops, shop[p], shop_null[p]),
    }
    for name in ATTRIBUTES:
        mask = product_null[p] if name == "product" else None
        cols[name] = pc.take(cat.attrs[name], pa.array(sku32, mask=mask))
    return _table("purchases", cols)


def visits_chunk(rng, act: Activity, cal: Calendar, voc: Vocab | None = None) -> pa.Table:
    """Past visits (completed / cancelled / no_show) and booked ones in the next 90 days;
    shops from `voc` (the default shape's when None)."""
    voc = voc or vocab(SHAPES["default"])
    past = np.repeat(np.arange(len(act.ids)), act.n_visits)
    booked = np.repeat(np.arange(len(act.ids)), act.n_booked)
    day = np.concatenate([
        _window_days(rng, cal, act.lo[past], act.hi[past]) + cal.start_day,
        cal.anchor_day + rng.integers(1, 91, len(booked)),
    ])
    cust = np.concatenate([past, booked])
    n = len(cust)
    second = (13 + rng.integers(0, 10, n)) * 3600 + rng.integers(0, 4, n) * 900
    status = np.concatenate([_pick(rng, len(past), (0.85, 0.09, 0.06)),
                             np.full(len(booked), 3)])
    shop = np.where(rng.random(n) < 0.85, act.home[cust], _pick(rng, n, voc.shop_weights))
    shop_null = rng.random(n) < 0.02

    p = rng.permutation(n)
    cols = {
        "customer_id": pa.array(act.ids[cust[p]], pa.int64()),
        "starts_at": pa.array((day[p] * 86_400 + second[p]) * 1_000_000,
                              pa.timestamp("us", tz="UTC")),
        "status": _take(("completed", "cancelled", "no_show", "booked"), status[p]),
        "shop": _take(voc.shops, shop[p], shop_null[p]),
    }
    return _table("visits", cols)


def laybys_chunk(rng, act: Activity, cal: Calendar) -> pa.Table:
    """Laybys opened in the last ~13 months, due around the anchor (some overdue)."""
    cust = np.repeat(np.arange(len(act.ids)), act.n_laybys)
    n, a = len(cust), cal.anchor_day
    opened = a - rng.integers(1, 400, n)
    due = opened + rng.integers(60, 181, n)
    if n:
        due[_force(rng, n, 0.01, 1)] = a                            # due today: not overdue yet
    closed = rng.random(n) < np.where(due < a - 30, 0.7, 0.25)
    owed = np.where(rng.random(n) < 0.08, 0, rng.lognormal(np.log(30_000), 0.8, n))
    balance = np.where(closed, 0, owed).astype(np.int64)

    p = rng.permutation(n)
    cols = {
        "customer_id": pa.array(act.ids[cust[p]], pa.int64()),
        "opened_on": pa.array(np.minimum(opened, due - 1)[p].astype(np.int32), pa.date32()),
        "due_on": pa.array(due[p].astype(np.int32), pa.date32()),
        "balance": pa.array(balance[p], pa.int64()),
        "status": _take(("open", "closed"), closed[p].astype(np.int64)),
    }
    return _table("laybys", cols)


def _table(name: str, cols: dict) -> pa.Table:
    schema = arrow_schema(name)
    n = len(next(iter(cols.values())))
    # optional columns the generator does not draw (purchases.order_id: orders by instant)
    return pa.Table.from_arrays([cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in schema],
                                schema=schema)
