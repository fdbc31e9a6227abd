"""Keeping tracked segments fresh: after change batches, at local midnight, and on demand.

A round takes, per dataset with tracked segments, one published (state, view) pair (so a
snapshot never mixes two states) and the instant `now`, and for each tracked, active saved
segment decides how much to re-evaluate:
  * nothing, when no batch since its last round wrote a table it reads (customer upserts
    and erasures concern every segment: activeness);
  * the touched customers only, when its membership is per customer (a customer's
    membership depends on its own rows: `evaluation_scope` says so from the condition
    kinds): new = (old - touched) | (evaluated & touched);
  * fully otherwise: a `limit`, a kind that compares customers with each other, a new
    local day (relative ranges, birthdays and ages move at midnight), an instant-bound kind
    (an upcoming appointment passes at any instant: also re-evaluated every
    `instant_every` seconds without changes), a changed definition, a compaction or load
    (new version), or no earlier round in this process.
Batches arriving faster than rounds run are coalesced: a round reads the newest state, and
the touched customers are those of every batch since the previous round.
A snapshot is recorded only when the membership changed (engine/catalog/audiences.py).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from pyroaring import BitMap

from ..errors import EngineError, NotFound
from ..evaluation import output
from ..evaluation.evaluate import Context
from ..evaluation.subset import Subset, SubsetContext, kernel_threads
from .audiences import Membership, changes_between
from ..model import kinds
from ..model import segment as S
from ..model import segment_json
from ..storage.id_sets import unique_ids

log = logging.getLogger("segments.audiences")

# ---------------------------------------------------------------- the rule, by condition kind

# Kinds whose test on a customer reads only that customer's own rows, and the tables they
# read ("customers" always: activeness), from the kinds registry (Kind.per_customer). A kind not listed here (percentile, rfm,
# in_segment, ...) compares customers with each other or reads another segment: evaluated
# fully. A kind may also declare itself with a class attribute `per_customer = False`.
PER_CUSTOMER_KINDS = {k.cls.__name__: tuple(t for t in k.reads if t in kinds.LINE_TABLES)
                      for k in kinds.KINDS if k.per_customer}
# Kinds whose answer moves at instants other than local midnight (evaluated fully each round).
INSTANT_KINDS = {"UpcomingAppointment"}
ALL_TABLES = frozenset({"customers", "deleted", "purchases", "visits", "laybys"})
ORDER_TABLES = {"spend": ("purchases",), "purchase_count": ("purchases",), "last_purchase": ("purchases",),
                "loyalty_points": (), "order_count": ("purchases",), "average_order_value": ("purchases",)}


@dataclass(frozen=True)
class Scope:
    """What a segment's membership depends on."""
    per_customer: bool           # re-evaluating the touched customers alone is exact
    tables: frozenset            # tables whose changes can change it
    instant: bool                # it can change at any instant, not only at midnight


def evaluation_scope(seg: S.Segment) -> Scope:
    """The rule: per customer unless a `limit` (the top n moves with everyone's values) or a
    condition kind outside PER_CUSTOMER_KINDS (or declaring per_customer = False)."""
    per_customer = seg.limit is None
    tables = {"customers", "deleted"}
    instant = False
    for top in S.segment_conditions(seg):
        for c in S.walk(top):
            kind = type(c).__name__
            reads = PER_CUSTOMER_KINDS.get(kind)
            if reads is None or getattr(type(c), "per_customer", True) is False:
                per_customer = False
                tables |= ALL_TABLES
            else:
                tables.update(reads)
            instant |= kind in INSTANT_KINDS
    if seg.order_by is not None and seg.limit is not None:
        tables.update(ORDER_TABLES.get(seg.order_by.key, ALL_TABLES))
    return Scope(per_customer, frozenset(tables), instant)


def next_midnight(now: dt.datetime, zone) -> dt.datetime:
    """The first instant of the local day after `now`'s (a DST change at midnight moves it)."""
    day = now.astimezone(zone).date() + dt.timedelta(days=1)
    for minutes in range(0, 24 * 60, 15):  # a zone may skip 00:00 (then the day starts later)
        t = dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60), zone)
        back = t.astimezone(dt.timezone.utc).astimezone(zone)
        if back.replace(tzinfo=None) == t.replace(tzinfo=None):
            return t.astimezone(dt.timezone.utc)
    return dt.datetime.combine(day, dt.time(0), zone).astimezone(dt.timezone.utc)


# ---------------------------------------------------------------- maintenance

LANE_PACE = 2.0   # the full lane waits this many times its last duration (<= 1/3 of the time)
LANE_NICE = 10    # the full lane's thread's nice increment
_LANE = object()  # _segment_round's answer for a segment of the full lane, deferred

@dataclass
class _Seen:
    """What the last round of one tracked segment saw (in this process)."""
    live: object
    state: object
    day: dt.date
    definition: str
    members: Membership
    number: int
    at: dt.datetime
    tracking: tuple = ()         # identity of the tracking.json it was recorded under
    lead: int = 0                # the maintainer's hold of the lock it was recorded in
    iids: Optional[BitMap] = None  # the members as internal ids of `live` (an ordered view), kept up to date


class _Touched:
    """What the batches after one state touched, shared by the segments of a round."""

    def __init__(self, state, ids: np.ndarray, tables: set, ext: np.ndarray, ordered: bool):
        self.state = state
        self.tables = tables
        self.ids = ids                                # internal ids, sorted
        self.customer_ids = ext[ids] if ordered else unique_ids(ext[ids])   # sorted
        self._ctx = None
        self._bitmap = None

    @property
    def bitmap(self) -> BitMap:
        """The touched internal ids as a bitmap (made once per round)."""
        if self._bitmap is None:
            self._bitmap = BitMap(self.ids.astype(np.uint32))
        return self._bitmap

    def context(self, view, whole: Context) -> SubsetContext:
        """The round's context over the touched customers alone (built once, shared by the
        round's segments: their lines are copied once, common conditions evaluated once)."""
        if self._ctx is None or self._ctx.whole is not whole:
            self._ctx = SubsetContext(Subset(view, self.ids), whole)
        return self._ctx


class Maintainer:
    """Keeps every tracked segment of an engine's datasets fresh, in one background thread
    (start / stop), or round by round (run_once) with an injectable clock in tests."""

    def __init__(self, engine, catalog, clock: Optional[Callable[[], dt.datetime]] = None,
                 poll: float = 1.0, instant_every: float = 60.0, run_tasks: bool = True, on_round: Optional[Callable[[dict], None]] = None):
        self.engine = engine
        self.catalog = catalog
        self.audiences = catalog.audiences
        self.clock = clock or catalog.clock
        self.poll = poll
        self.run_tasks = run_tasks   # also run the daily tasks that are due (engine/catalog/schedule.py)
        self.instant_every = dt.timedelta(seconds=instant_every)  # instant-bound segments, untouched
        self.on_round = on_round or (lambda stats: None)
        self._seen: dict = {}
        self._parsed: dict = {}   # (dataset, name) -> (file stamp, SavedSegment)
        self._folders: dict = {}  # dataset -> (its saved segments' folder, its tracked segments' folder)
        self._shapes: dict = {}   # id(segment) -> (segment, JSON definition, Scope)
        self._lead = 0            # times this maintainer took the data directory's lock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._round_lock = threading.Lock()
        self._leader = None   # the open lock file while this process maintains the data directory
        self._lane: dict = {}   # dataset -> (monotonic end, seconds) of its full lane's last run
        # the full lane's own thread (started with the rounds' thread): segments handed to it
        # (dataset -> {name: Segment}) are left alone by the rounds until it recorded them
        self._lane_thread: Optional[threading.Thread] = None
        self._lane_wake = threading.Event()
        self._lane_guard = threading.Lock()     # _lane_work and _in_lane
        self._lane_busy = threading.Lock()      # held while the lane evaluates (run_once waits for it)
        self._lane_work: dict = {}
        self._in_lane: set = set()
        self.rounds = 0

    # ------------------------------------------------------------ thread
    def start(self) -> "Maintainer":
        self.engine.add_change_listener(self.wake)
        self._thread = threading.Thread(target=self._loop, name="audiences", daemon=True)
        self._lane_thread = threading.Thread(target=self._lane_loop, name="audiences-lane", daemon=True)
        self._lane_thread.start()
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.engine.remove_change_listener(self.wake)
        self._stop.set()
        self._wake.set()
        self._lane_wake.set()
        for t in (self._thread, self._lane_thread):
            if t is not None:
                t.join(timeout)
        with self._round_lock:
            self._release()

    def wake(self, dataset: Optional[str] = None) -> None:
        """A batch was acknowledged (or a load, a compaction): run a round soon."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once(paced=True)
            except Exception:  # noqa: BLE001 - the next round retries
                log.exception("tracked segments: round failed")

    def _lane_loop(self) -> None:
        """The full lane's thread: evaluates the segments handed to it, per dataset at most
        once every LANE_PACE times its last duration (its kernels release the GIL, so the
        per-customer rounds go on meanwhile). It runs its kernels itself, one thread, at a
        lower CPU priority (LANE_NICE; Linux gives each thread its own), so that on a busy
        machine the writer and the per-customer rounds come first."""
        _lower_priority(LANE_NICE)
        timeout = self.poll
        while not self._stop.is_set():
            self._lane_wake.wait(timeout)
            self._lane_wake.clear()
            timeout = self.poll
            if self._stop.is_set():
                return
            with self._lane_guard:
                work, self._lane_work = self._lane_work, {}
            for dataset, segs in work.items():
                last = self._lane.get(dataset)
                wait = 0.0 if last is None else LANE_PACE * last[1] - (time.monotonic() - last[0])
                if wait > 0:   # not due yet: back in the queue
                    with self._lane_guard:
                        self._lane_work.setdefault(dataset, {}).update(segs)
                    timeout = min(timeout, wait)
                    continue
                try:
                    with self._lane_busy, kernel_threads(1):
                        self._lane_round(dataset, segs)
                except Exception:  # noqa: BLE001 - the next rounds hand them over again
                    log.exception("tracked segments: full lane of %s failed", dataset)
                finally:
                    with self._lane_guard:
                        self._in_lane -= {(dataset, n) for n in segs}

    def _hand_to_lane(self, dataset: str, lane: list) -> None:
        with self._lane_guard:
            self._lane_work.setdefault(dataset, {}).update(lane)
            self._in_lane |= {(dataset, n) for n, _ in lane}
        self._lane_wake.set()

    def _lane_round(self, dataset: str, segs: dict) -> list:
        """Evaluate the full lane's segments of a dataset on its newest state, record them."""
        t0 = time.perf_counter()
        t1 = time.monotonic()
        ds = self.engine.dataset(dataset)
        live, st, view = ds.reading()
        now = self.clock()
        day = now.astimezone(ds.zone).date()
        ctx = None if getattr(view, "empty", False) else Context(view, now, None)
        stats = {"dataset": dataset, "full": 0, "incremental": 0, "skipped": 0, "deferred": 0,
                 "sequence": st.seq if st is not None else 0, "phase": "full"}
        touched: dict = {}
        pending = [item for item in (self._segment_round(dataset, name, seg, live, st, view, ctx, now, day, stats,
                                                         touched) for name, seg in segs.items()) if item is not None]
        out = self._record(dataset, pending)
        self._lane[dataset] = (time.monotonic(), time.monotonic() - t1)
        stats.update(seconds=time.perf_counter() - t0, recorded=len(out))
        try:
            names = self.audiences.tracked(dataset)
        except NotFound:
            names = []
        stats["settled"] = self._settled(dataset, names)
        self.on_round(stats)
        return out

    # ------------------------------------------------------------ rounds
    def leader(self) -> bool:
        """Whether this process maintains the data directory: one process does (an flock
        held while it lives), so that server processes sharing the data directory
        (--processes) never record the same snapshot twice; another takes over when it ends."""
        if self._leader is None:
            import fcntl
            f = open(Path(self.engine.root) / ".audiences.lock", "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                return False
            self._leader = f
            self._lead += 1   # others may have recorded while this process did not hold the lock
        return True

    def _release(self) -> None:
        if self._leader is not None:
            self._leader.close()
            self._leader = None

    def run_once(self, datasets=None, paced: bool = False) -> list:
        """One round over the datasets (default every one with tracked segments); returns
        the snapshots recorded as (dataset, name, AudienceSnapshot). Nothing when another
        process maintains the data directory."""
        with self._round_lock, (_nothing() if paced else self._lane_busy):
            out = []
            if not self.leader():
                return out
            for name in (self.engine.datasets() if datasets is None else datasets):
                try:
                    tracked = self.audiences.tracked(name)
                except NotFound:  # deleted meanwhile
                    continue
                if tracked:
                    out.extend(self._dataset_round(name, tracked, paced))
                if self.run_tasks:
                    try:
                        for run in self.catalog.schedules.run_due(name, self.clock()):
                            log.info("daily task %s of %s: %s, %d rows", run.name, name, run.day, run.rows)
                    except Exception:  # noqa: BLE001 - the next round retries the day
                        log.exception("daily tasks of %s failed", name)
            self.rounds += 1
            return out

    def _dataset_round(self, dataset: str, tracked: list, paced: bool = False) -> list:
        """One round of a dataset's tracked segments. `paced` (the background thread): the
        segments evaluated fully only because their membership is not per customer (the
        full lane) wait while the lane has run within LANE_PACE times its last duration,
        and are recorded after the others, so that they never hold up the per-customer
        segments' snapshots; their batches are coalesced meanwhile."""
        t0 = time.perf_counter()
        ds = self.engine.dataset(dataset)
        live, st, view = ds.reading()  # one state for every segment of this round
        now = self.clock()
        day = now.astimezone(ds.zone).date()
        # one evaluation context for the round: conditions shared by several tracked
        # segments are evaluated once (same state, same instant)
        ctx = None if getattr(view, "empty", False) else Context(view, now, None)
        touched: dict = {}   # the previous state a segment saw -> what the batches since touched
        pending, lane, names = [], [], []
        stats = {"dataset": dataset, "full": 0, "incremental": 0, "skipped": 0, "deferred": 0,
                 "sequence": st.seq if st is not None else 0, "phase": "per_customer" if paced else "all"}
        for name in tracked:
            try:
                saved = self._saved(dataset, name)
            except (NotFound, EngineError):
                self._seen.pop((dataset, name), None)
                continue
            if not saved.active:
                continue
            names.append(name)
            if paced and (dataset, name) in self._in_lane:
                continue   # the lane's thread has it
            item = self._segment_round(dataset, name, saved.segment, live, st, view, ctx, now, day, stats, touched,
                                       defer=paced)
            if item is _LANE:
                lane.append((name, saved.segment))
            elif item is not None:
                pending.append(item)
        out = self._record(dataset, pending)
        if paced:
            stats["seconds"] = time.perf_counter() - t0
            stats["recorded"] = len(out)
            stats["settled"] = self._settled(dataset, names)
            self.on_round(dict(stats, deferred=len(lane)))
            if lane and self._lane_thread is not None:
                self._hand_to_lane(dataset, lane)
                return out
            t1 = time.monotonic()
            last = self._lane.get(dataset)
            if not lane or (last is not None and t1 - last[0] < LANE_PACE * last[1]):
                return out
            stats.update(full=0, incremental=0, skipped=0, deferred=0, phase="full")
            pending = [item for item in (self._segment_round(dataset, name, seg, live, st, view, ctx, now, day, stats,
                                                             touched) for name, seg in lane) if item is not None]
            more = self._record(dataset, pending)
            self._lane[dataset] = (time.monotonic(), time.monotonic() - t1)
            out += more
            stats["recorded"] = len(more)
        stats["seconds"] = time.perf_counter() - t0
        stats.setdefault("recorded", len(out))
        stats["settled"] = self._settled(dataset, names)
        self.on_round(stats)
        return out

    def _record(self, dataset: str, pending: list) -> list:
        try:
            recorded = self.audiences.record_many(dataset, pending)
        except Exception:
            for item in pending:   # not recorded: the next round starts again from the disk
                self._seen.pop((dataset, item[0]), None)
            raise
        return [(dataset, item[0], rec) for item, rec in zip(pending, recorded)]

    def _settled(self, dataset: str, names: list) -> int:
        """The newest change sequence that every one of the segments has been evaluated at."""
        seqs = [getattr(getattr(self._seen.get((dataset, n)), "state", None), "seq", 0) for n in names]
        return min(seqs) if seqs else 0

    def _folder(self, dataset: str, kind: int) -> str:
        """The dataset's saved segments' (0) or tracked segments' (1) catalog folder (a
        dataset's folders never move: asked of the catalog once)."""
        hit = self._folders.get(dataset)
        if hit is None:
            hit = self._folders[dataset] = (str(self.catalog._dir(dataset, "segments")),
                                            str(self.catalog._dir(dataset, "audiences")))
        return hit[kind]

    def _tracking_identity(self, dataset: str, name: str) -> tuple:
        """(inode, mtime, size) of a tracked segment's tracking.json, () when not tracked: a
        new one (tracked again, retention changed) numbers or keeps snapshots anew."""
        try:
            st = os.stat(os.path.join(self._folder(dataset, 1), name, "tracking.json"))
        except FileNotFoundError:
            return ()
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _shape(self, seg: S.Segment) -> tuple:
        """(JSON definition, Scope) of a segment, worked out once per parsed definition (the
        segment objects of _saved live as long as their file is unchanged)."""
        hit = self._shapes.get(id(seg))
        if hit is None or hit[0] is not seg:
            if len(self._shapes) > 4 * len(self._parsed) + 64:   # definitions replaced since
                self._shapes.clear()
            hit = self._shapes[id(seg)] = (seg, segment_json.dumps(seg), evaluation_scope(seg))
        return hit[1], hit[2]

    def _saved(self, dataset: str, name: str):
        """The saved segment, parsed again only when its file changed."""
        path = os.path.join(self._folder(dataset, 0), f"{name}.json")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound("name", f"no saved segment {name!r}") from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        hit = self._parsed.get((dataset, name))
        if hit is None or hit[0] != stamp:
            hit = self._parsed[(dataset, name)] = (stamp, self.catalog.get_segment(dataset, name))
        return hit[1]

    def _segment_round(self, dataset, name, seg, live, st, view, ctx, now, day, stats, touched_since,
                       defer: bool = False):
        """Evaluate one tracked segment as the rule says; the item to record (None: no
        change, or nothing to do), or _LANE when `defer` and it is due a full evaluation only
        because its membership is not per customer (the caller runs those at their pace)."""
        key = (dataset, name)
        definition, scope = self._shape(seg)
        seen = self._seen.get(key)
        same = (seen is not None and seen.live is live and seen.day == day and seen.definition == definition
                and st is not None and seen.state is not None)
        tracking = self._tracking_identity(dataset, name)
        if seen is not None and tracking and seen.tracking == tracking and seen.lead == self._lead:
            newest_number = seen.number   # its own record: no other maintainer records while it leads
        else:
            newest_number = self.audiences.newest_number(dataset, name)
        if same and newest_number != seen.number:
            same = False  # another writer recorded meanwhile: start again from the newest
        due = scope.instant and (seen is None or now - seen.at >= self.instant_every)
        if same and seen.state is st and not due:
            return None
        mode = "full"
        touched = None
        if same and seen.state is not st:
            since = touched_since.get(id(seen.state))
            if since is None or since.state is not seen.state:
                ids, tables = self.engine.dataset(dataset).touched(seen.state, st)
                since = touched_since[id(seen.state)] = _Touched(seen.state, ids, tables, view.ext_ids(),
                                                                      getattr(view, "ordered", True))
            tables = since.tables
            if not tables & scope.tables and not due:
                seen.state = st
                stats["skipped"] += 1
                return None
            if scope.per_customer and not scope.instant:
                mode, touched = "incremental", since
            elif defer:
                return _LANE
        if seen is not None and seen.number == newest_number and seen.definition == definition:
            old = seen.members    # what this process recorded last (a new day or version: still valid)
        else:
            old = Membership(self.audiences.members(dataset, name, newest_number)) if newest_number else None
        iids = seen.iids if seen is not None and seen.live is live and old is seen.members else None
        new, changes, iids = self._evaluate(seg, view, ctx, now, old, touched, self.engine.references(dataset), iids)
        stats[mode] += 1
        number = newest_number
        seen_now = _Seen(live, st, day, definition, new, number, now, tracking, self._lead, iids)
        self._seen[key] = seen_now
        if old is None or changes[0].size or changes[1].size:
            seen_now.number = number + 1   # recorded at the end of the round, with the others
            return (name, new, old, now, st.seq if st is not None else 0, mode, changes)
        return None

    @staticmethod
    def _evaluate(seg, view, ctx, now, old: Optional[Membership], touched: Optional["_Touched"], references,
                  iids: Optional[BitMap] = None) -> tuple:
        """(new Membership, (entered, exited) or None when not known, the members as internal
        ids or None): evaluated for everyone, or for the touched internal ids alone (the
        round's Subset of them, engine/evaluation/subset.py), their changes added to the old
        membership. `iids`: the old members as internal ids of this view's version (a view
        whose internal id order is customer_id order), updated in place: which touched
        customers were members is then one bitmap intersection, else searches of their
        customer_ids in the membership (cost: the touched customers' lines, and theirs)."""
        if ctx is None:  # a dataset never loaded: nobody
            none = np.zeros(0, np.int64)
            return Membership(none), (changes_between(old.array(), none) if old is not None else None), None
        ext = view.ext_ids()
        ordered = getattr(view, "ordered", True)
        if touched is None:
            members = output.evaluate(view, seg, now, None, ctx=ctx, references=references).members
            ids = ext[_ids(members)]
            ids = ids if ordered else np.sort(ids)
            return (Membership(ids), (changes_between(old.array(), ids) if old is not None else None),
                    BitMap(members) if ordered else None)
        sub = touched.context(view, ctx)
        with kernel_threads():
            members = output.evaluate(sub.snap, seg, now, None, ctx=sub, references=references).members
        hit_iids = sub.snap.to_view(_ids(members))          # ascending internal ids
        if iids is not None and ordered:
            was = iids & touched.bitmap                     # touched customers that were members
            now_in = BitMap(hit_iids.astype(np.uint32))
            came, left = now_in - was, was - now_in
            iids |= came
            iids -= left
            entered, exited = ext[_ids(came)], ext[_ids(left)]   # ascending: ordered
            return old.apply(entered, exited), (entered, exited), iids
        hit = ext[hit_iids]
        hit = hit if ordered else unique_ids(hit)
        cand = touched.customer_ids
        was = cand[old.contains(cand)]                      # touched customers that were members
        entered, exited = changes_between(was, hit)
        return old.apply(entered, exited), (entered, exited), None


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (where threads have their own)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice)
    except (AttributeError, OSError):   # not Linux: the thread keeps the process's
        log.debug("tracked segments: the full lane's priority stays the process's")


class _nothing:
    """A context manager that does nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _ids(bm) -> np.ndarray:
    return np.frombuffer(bm.to_array(), np.uint32).astype(np.int64) if len(bm) else np.zeros(0, np.int64)


__all__ = ["Maintainer", "Scope", "evaluation_scope", "next_midnight"]
