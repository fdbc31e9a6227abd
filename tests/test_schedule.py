"""Daily tasks: a schedule missed for three days runs three times, each day as of its own
local time, with entered / exited files equal to tests/naive.py's set differences between
consecutive days; DST-skipped times; confined folders; the `segments schedule` command.
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from zoneinfo import ZoneInfo

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from segments.engine.model import segment as S

NY = ZoneInfo("America/New_York")
BIRTHDAY = S.Segment(S.Birthday("birth", "today"))


class FakeClock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from segments.bench.generate import generate
    folder = tmp_path_factory.mktemp("sched_base")
    generate(folder, customers=1500, seed=9, fmt="parquet")
    return folder


def _engine(tmp_path, base):
    from segments.engine.api import Engine
    eng = Engine(tmp_path / "data")
    eng.create_dataset("shop", "America/New_York")
    eng.ingest("shop", base)
    return eng


def test_run_instant_dst():
    from segments.engine.catalog.schedule import run_instant
    # 02:30 does not exist on 8 March 2026 in New York: the instant after the gap (03:30 EDT)
    assert run_instant(dt.date(2026, 3, 8), "02:30", NY) == dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.timezone.utc)
    # 01:30 happens twice on 1 November 2026: the first one (EDT)
    assert run_instant(dt.date(2026, 11, 1), "01:30", NY) == dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.timezone.utc)


def test_missed_days_run_each_as_of_its_time(tmp_path, base):
    from segments.bench.duck import read_tables
    from segments.engine.catalog.catalog import Catalog
    from segments.engine.errors import InvalidArgument
    from tests.naive import Naive
    eng = _engine(tmp_path, base)
    clock = FakeClock(dt.datetime(2026, 11, 16, 6, 0, tzinfo=NY))
    cat = Catalog(eng, clock=clock)
    cat.create_segment("shop", "birthday", BIRTHDAY)
    sch = cat.schedules
    with pytest.raises(InvalidArgument):
        sch.set_task("shop", "birthday", "7:00")
    with pytest.raises(InvalidArgument):
        sch.set_task("shop", "birthday", "07:00", folder="../elsewhere")
    sch.set_task("shop", "birthday", "07:00", format="csv", fields=("email",), folder="daily")
    clock.t = dt.datetime(2026, 11, 16, 8, 0, tzinfo=NY)
    assert [r.day for r in sch.run_due("shop")] == [dt.date(2026, 11, 16)]
    assert sch.run_due("shop") == []                       # nothing more today
    clock.t = dt.datetime(2026, 11, 19, 7, 30, tzinfo=NY)  # down for the 17th, 18th and 19th
    runs = sch.run_due("shop")
    assert [r.day for r in runs] == [dt.date(2026, 11, 17), dt.date(2026, 11, 18), dt.date(2026, 11, 19)]
    naive = Naive(read_tables(base), "America/New_York")
    prev = set(naive.result(BIRTHDAY, dt.datetime(2026, 11, 16, 7, 0, tzinfo=NY)))
    root = tmp_path / "data" / "_exports"
    changed = 0
    for r in runs:
        at = dt.datetime.combine(r.day, dt.time(7, 0), NY)
        assert r.as_of == at
        want = set(naive.result(BIRTHDAY, at))
        full = pcsv.read_csv(root / r.file)
        assert set(full.column("customer_id").to_pylist()) == want and "email" in full.column_names
        entered = set(pcsv.read_csv(root / r.entered_file).column("customer_id").to_pylist())
        exited = set(pcsv.read_csv(root / r.exited_file).column("customer_id").to_pylist())
        assert entered == want - prev and exited == prev - want
        assert json.loads((root / (r.file + ".json")).read_text())["as_of"].startswith(
            at.astimezone(dt.timezone.utc).isoformat()[:19])
        changed += bool(entered or exited)
        prev = want
    assert changed >= 2   # birthdays move every day
    recorded = sch.runs("shop", "birthday")
    assert [x["day"] for x in recorded] == ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"]
    assert sch.task("shop", "birthday").last_run_day == dt.date(2026, 11, 19)
    assert sch.next_run("shop", sch.task("shop", "birthday")) == dt.datetime(2026, 11, 20, 7, 0, tzinfo=NY)
    # a folder that is a symlink out of the export folder is refused
    (root / "shop" / "link").symlink_to(tmp_path)
    sch.set_task("shop", "birthday", "07:00", folder="link")
    clock.t = dt.datetime(2026, 11, 20, 9, 0, tzinfo=NY)
    with pytest.raises(InvalidArgument):
        sch.run_due("shop")
    cat.delete_segment("shop", "birthday")
    assert sch.tasks("shop") == []
    eng.close()


def test_schedule_command(tmp_path, base):
    eng = _engine(tmp_path, base)
    from segments.engine.catalog.catalog import Catalog
    Catalog(eng).create_segment("shop", "points", S.Segment(S.LoyaltyPoints(S.Cmp(">=", 500))))
    eng.close()

    def run(*args):
        r = subprocess.run([sys.executable, "-m", "segments.cli.main", "--data", str(tmp_path / "data"),
                            "schedule", *args], capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout, r.stderr
    code, out, err = run("set", "shop", "points", "--at", "00:00", "--format", "parquet", "--fields", "email")
    assert code == 0, err
    assert json.loads(out)["at"] == "00:00"
    code, out, err = run("list", "shop")
    assert code == 0 and [t["name"] for t in json.loads(out)] == ["points"]
    code, out, err = run("run", "shop")   # set today: its first day is tomorrow, nothing due yet
    assert code == 0 and json.loads(out) == [], out
    code, out, err = run("set", "shop", "points", "--at", "25:00")
    assert code == 2 and "at" in err and "Traceback" not in err
    code, out, err = run("delete", "shop", "points")
    assert code == 0 and json.loads(run("list", "shop")[1]) == []
    assert pq  # parquet reader imported for the daily files' format
