"""Data shapes of the generator: cardinalities, skew, history, activity mix and id layout.

A `Shape` names every parameter that decides what a generated dataset looks like apart from
its size; `SHAPES` holds the named ones (`make bench SHAPE=...`, `segments generate
--shape ...`):

    default        today's data: 8 departments, 5 metals, 11 brands, 7 strains, 3,000 SKUs,
                   6 shops, 3 years, ~20 lines per customer, wide sparse ids, 3% inactive
    catalog        a real catalogue's cardinalities: 20 departments, 6 metals, 2,000 brands,
                   200 strains, 50,000 SKUs, 40 shops; brands, strains and SKUs Zipf-skewed
    long_history   10 years of history, ~60 purchase lines per customer
    sparse         random 10-digit customer_ids, 5% inactive, 30% without any purchase

`vocab(shape)` turns a shape into the value lists the table builders draw from. Values the
spec's examples name (departments diamond / beads / charms, metal gold, the named brands,
strains and shops) are always kept, first, so every suite segment means something on every
shape; the extra values are generated names. With the default shape's parameters the lists
are exactly bench/generate/vocab.py's and no draw changes: the default output is
byte-identical to what the generator wrote before shapes existed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import vocab as V

ID_LAYOUTS = ("wide", "digits10")   # [1e9, 9e15) spread by chunk; random 10-digit [1e9, 1e10)


@dataclass(frozen=True)
class Shape:
    """Everything about a generated dataset's shape except its size and seed."""
    name: str = "default"
    departments: int = len(V.DEPARTMENTS)
    metals: int = len(V.METALS)
    brands: int = len(V.JEWELLERY_BRANDS) + len(V.DISPENSARY_BRANDS)
    strains: int = len(V.STRAINS)
    skus: int = 3000
    shops: int = len(V.SHOPS)
    sku_zipf: float = 0.9              # SKU popularity ~ rank^-sku_zipf (within a customer kind)
    value_zipf: float = 0.0            # brands / strains / extra departments and shops over
                                       # the SKUs ~ rank^-value_zipf; 0 = uniform (today's)
    years: int = 3                     # history length up to the anchor day
    lines_per_customer: float = 20.0   # mean purchase lines per customer (all customers)
    ids: str = "wide"                  # customer_id layout, one of ID_LAYOUTS
    inactive: float = 0.03             # share of customers with active = false
    no_purchases: Optional[float] = None   # share of customers without any purchase line;
                                           # None = today's mix (~16.5%)

    def __post_init__(self):
        mins = {"departments": 6, "metals": 1, "brands": 2, "strains": 1, "skus": 10, "shops": 1,
                "years": 1}
        for field, low in mins.items():
            v = getattr(self, field)
            if not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"shape {self.name!r}: {field} must be an int >= {low}, not {v!r}")
        if self.ids not in ID_LAYOUTS:
            raise ValueError(f"shape {self.name!r}: ids must be one of {ID_LAYOUTS}, not {self.ids!r}")
        for field in ("inactive",) + (("no_purchases",) if self.no_purchases is not None else ()):
            v = getattr(self, field)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"shape {self.name!r}: {field} must be in [0, 1), not {v!r}")
        if self.no_purchases is not None and self.no_purchases < NO_ACTIVITY_SHARE:
            raise ValueError(f"shape {self.name!r}: no_purchases must be >= {NO_ACTIVITY_SHARE} "
                             f"(customers with no activity at all), not {self.no_purchases!r}")
        if not self.lines_per_customer > 0 or self.sku_zipf < 0 or self.value_zipf < 0:
            raise ValueError(f"shape {self.name!r}: lines_per_customer must be > 0 and the Zipf "
                             "exponents >= 0")

    def describe(self) -> dict:
        return dataclasses.asdict(self)


NO_ACTIVITY_SHARE = 0.135   # bench/generate/tables.NO_ACTIVITY (customers with no activity)

SHAPES = {
    "default": Shape(),
    "catalog": Shape("catalog", departments=20, metals=6, brands=2000, strains=200, skus=50_000,
                     shops=40, sku_zipf=1.0, value_zipf=1.0),
    "long_history": Shape("long_history", years=10, lines_per_customer=60.0),
    "sparse": Shape("sparse", ids="digits10", inactive=0.05, no_purchases=0.30),
}


def get(shape) -> Shape:
    """A Shape from a Shape or a name of SHAPES."""
    if isinstance(shape, Shape):
        return shape
    if isinstance(shape, str) and shape in SHAPES:
        return SHAPES[shape]
    raise ValueError(f"shape must be one of {sorted(SHAPES)} (or a Shape), not {shape!r}")


# ------------------------------------------------------------------ value lists of a shape
@dataclass(frozen=True)
class Vocab:
    """The value lists a dataset of one shape draws from (vocab.py's, extended)."""
    departments: tuple       # (name, catalog weight, median cents, price sigma)
    metals: tuple
    metal_weights: dict      # department -> weights in metals order (rest of the row: null)
    jewellery_brands: tuple
    dispensary_brands: tuple
    brand_weights: Optional[tuple]   # (jewellery, dispensary) weights; None = uniform draws
    strains: tuple
    strain_weights: Optional[np.ndarray]
    shops: tuple
    shop_weights: tuple


# Extra jewellery departments (name, median cents, sigma), used in this order.
EXTRA_DEPARTMENTS = (
    ("pendants", 22_000, 0.8), ("anklets", 9_000, 0.7), ("brooches", 18_000, 0.8),
    ("cufflinks", 15_000, 0.7), ("lockets", 12_000, 0.7), ("chains", 16_000, 0.8),
    ("bangles", 20_000, 0.8), ("pearls", 60_000, 0.9), ("gemstones", 90_000, 1.0),
    ("body jewellery", 4_000, 0.6), ("tiaras", 120_000, 0.9), ("repairs", 3_000, 0.5),
)
EXTRA_METALS = ("titanium", "palladium", "stainless steel", "copper", "brass", "tungsten")
EXTRA_DEPARTMENT_SHARE = 0.25      # of the catalog weight, over the extra departments
EXTRA_METAL_WEIGHT = 0.03          # each extra metal, in every department's row
EXTRA_SHOP_SHARE = 0.4             # of the shop weight, over the extra shops
JEWELLERY_BRAND_SHARE = 0.6        # of the brands beyond the named ones


def zipf_weights(n: int, s: float) -> np.ndarray:
    """Weights of ranks 1..n proportional to rank^-s, summing to 1."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return w / w.sum()


def _names(named: tuple, n: int, fmt: str) -> tuple:
    """The first n of `named`, then generated names fmt.format(i) numbered on from there."""
    return tuple(named[:n]) + tuple(fmt.format(i) for i in range(len(named) + 1, n + 1))


def vocab(shape: Shape) -> Vocab:
    """The value lists of a shape; the default shape gives vocab.py's lists unchanged."""
    nd = shape.departments
    if nd <= len(V.DEPARTMENTS):
        depts = tuple(V.DEPARTMENTS[:nd])
    else:
        extra = [EXTRA_DEPARTMENTS[i % len(EXTRA_DEPARTMENTS)] for i in range(nd - len(V.DEPARTMENTS))]
        names = [e[0] if i < len(EXTRA_DEPARTMENTS) else f"{e[0]} {i // len(EXTRA_DEPARTMENTS) + 1}"
                 for i, e in enumerate(extra)]
        w = zipf_weights(len(extra), shape.value_zipf) * EXTRA_DEPARTMENT_SHARE
        depts = tuple((n, wt * (1 - EXTRA_DEPARTMENT_SHARE), m, s) for n, wt, m, s in V.DEPARTMENTS) + \
            tuple((name, float(wi), m, s) for name, wi, (_, m, s) in zip(names, w, extra))
    metals = _names(V.METALS + EXTRA_METALS, shape.metals, "alloy {}")
    metal_weights = {}
    generic = (0.30, 0.30, 0.08, 0.10, 0.08)
    for name, _, _, _ in depts:
        row = list(V.METAL_WEIGHTS.get(name, generic))[:len(metals)]
        row += [EXTRA_METAL_WEIGHT] * (len(metals) - len(row))
        metal_weights[name] = tuple(row)
    named_j, named_d = V.JEWELLERY_BRANDS, V.DISPENSARY_BRANDS
    nb = shape.brands
    if nb <= len(named_j) + len(named_d):
        nj = min(len(named_j), max(1, nb - 1))
        jb, db = tuple(named_j[:nj]), tuple(named_d[:nb - nj])
    else:
        extra = nb - len(named_j) - len(named_d)
        ej = int(round(extra * JEWELLERY_BRAND_SHARE))
        jb = named_j + tuple(f"Atelier {i:04d}" for i in range(1, ej + 1))
        db = named_d + tuple(f"Farm {i:04d}" for i in range(1, extra - ej + 1))
    brand_weights = None
    if shape.value_zipf > 0:
        brand_weights = (zipf_weights(len(jb), shape.value_zipf), zipf_weights(len(db), shape.value_zipf))
    strains = _names(V.STRAINS, shape.strains, "Strain #{:03d}")
    strain_weights = zipf_weights(len(strains), shape.value_zipf) if shape.value_zipf > 0 else None
    shops = _names(V.SHOPS, shape.shops, "Shop {:03d}")
    if shape.shops <= len(V.SHOPS):
        shop_weights = tuple(V.SHOP_WEIGHTS[:shape.shops])
    else:
        w = zipf_weights(shape.shops - len(V.SHOPS), shape.value_zipf) * EXTRA_SHOP_SHARE
        shop_weights = tuple(x * (1 - EXTRA_SHOP_SHARE) for x in V.SHOP_WEIGHTS) + tuple(float(x) for x in w)
    return Vocab(depts, metals, metal_weights, jb, db, brand_weights, strains, strain_weights,
                 shops, shop_weights)
