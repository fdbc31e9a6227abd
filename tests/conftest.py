"""Shared fixtures: small datasets ingested into one session Engine, each with its DuckPeer.

Datasets (session scope, built once): "gen1" / "gen2" come from engine.generate (3000
customers, seeds 1 and 2, New York and Auckland); "edge_ny" / "edge_akl" are the hand-made
edge cases of tests/datasets.py loaded in both zones. shard_bits=10 so every dataset spans
several shards. Engine imports happen inside fixtures so reference-only tests run without it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from segments.bench.duck import DuckPeer
from tests import datasets as D

GEN_SEEDS = {"gen1": (1, D.NY), "gen2": (2, D.AKL)}
EDGE = {"edge_ny": D.NY, "edge_akl": D.AKL}
DATASETS = (*GEN_SEEDS, *EDGE)


def gen_as_ofs(zone: str) -> list:
    """After the generator's anchor day, before its last purchases, and on a DST day."""
    z = ZoneInfo(zone)
    return [dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=z),
            dt.datetime(2026, 8, 31, 9, 30, tzinfo=z),
            dt.datetime(2026, 3, 8, 3, 30, tzinfo=z)]


@dataclass
class DS:
    """One ingested dataset: the engine and dataset name, its peer, and as-of instants to try."""
    key: str
    engine: object
    name: str
    peer: DuckPeer
    timezone: str
    as_ofs: list
    folder: Path
    cache: dict = field(default_factory=dict)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    from segments.engine.api import Engine
    eng = Engine(tmp_path_factory.mktemp("engine"))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def edge_folder(tmp_path_factory):
    return D.write_folder(D.edge_tables(), tmp_path_factory.mktemp("edge"))


@pytest.fixture(scope="session")
def _datasets():
    return {}


@pytest.fixture(scope="session")
def get_dataset(engine, edge_folder, tmp_path_factory, _datasets):
    """get_dataset(key) -> DS, built on first use."""
    def get(key: str) -> DS:
        if key in _datasets:
            return _datasets[key]
        if key in EDGE:
            folder, tz = edge_folder, EDGE[key]
            as_ofs = D.EDGE_AS_OFS_BY_ZONE[tz]
        else:
            from segments.bench.generate import generate
            seed, tz = GEN_SEEDS[key]
            folder = tmp_path_factory.mktemp(key)
            generate(folder, customers=3000, seed=seed, fmt="parquet")
            as_ofs = gen_as_ofs(tz)
        engine.create_dataset(key, tz, shard_bits=10)
        engine.ingest(key, folder)
        _datasets[key] = DS(key, engine, key, DuckPeer.from_folder(folder, tz), tz, as_ofs, folder)
        return _datasets[key]
    return get


@pytest.fixture(params=DATASETS)
def ds(request, get_dataset) -> DS:
    """Each dataset in turn."""
    return get_dataset(request.param)
