"""Calendar arithmetic: as-of instants, local `today`, time-range presets, day numbers.

Dates are carried as int day numbers (days since 1970-01-01) inside the engine so kernels
compare integers; this module is the only place that knows about zones and presets.
"""
from __future__ import annotations

import calendar
import datetime as dt
import functools
from typing import Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidArgument
from .limits import check_instant
from .segment import Offset, TimeRange

EPOCH = dt.date(1970, 1, 1)
UTC = dt.timezone.utc
MIN_DAY = -(2**31) + 1   # "no lower bound" as a day number
MAX_DAY = 2**31 - 2      # "no upper bound"


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or InvalidArgument naming it."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name or len(name) > 255:
        raise InvalidArgument("timezone", f"unknown IANA timezone {_shown(name)}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidArgument("timezone", f"unknown IANA timezone {_shown(name)}") from None


def day_number(d: dt.date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def from_day_number(n: int) -> dt.date:
    """The date `n` days after 1970-01-01."""
    return EPOCH + dt.timedelta(days=int(n))


def to_micros(instant: dt.datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    if instant.tzinfo is None:
        raise InvalidArgument("as_of", "instant needs a UTC offset or Z")
    delta = instant - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_instant(text: str, path: str = "as_of") -> dt.datetime:
    """An ISO-8601 instant with offset or Z; a bare date means its local midnight is not
    guessed: it is refused."""
    try:
        v = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(path, f"not an ISO-8601 instant: {_shown(text)}") from None
    if v.tzinfo is None:
        raise InvalidArgument(path, f"instant {_shown(text)} needs a UTC offset or Z")
    try:
        v.astimezone(UTC)
    except OverflowError:
        raise InvalidArgument(path, f"{_shown(text)} is outside the supported calendar") from None
    return check_instant(v, path)


def _shown(text) -> str:
    s = repr(text)
    return s if len(s) <= 80 else s[:72] + "...'"


def add_months(d: dt.date, months: int) -> dt.date:
    """d shifted by whole months, clamped to the target month's last day."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def shift(today: dt.date, off: Offset) -> dt.date:
    """today + off.months (clamped) + off.days; saturates at date.min / date.max (a bound
    beyond the calendar is no bound)."""
    try:
        return add_months(today, off.months) + dt.timedelta(days=off.days)
    except (OverflowError, ValueError):
        return dt.date.min if (off.months, off.days) < (0, 0) else dt.date.max


def _minus(d: dt.date, days: int) -> dt.date:
    """d - days, saturating at date.min."""
    try:
        return d - dt.timedelta(days=days)
    except OverflowError:
        return dt.date.min


def days_from(start: dt.date, n: int) -> list:
    """The dates start .. start+n-1 that exist in the calendar."""
    out = []
    for i in range(n):
        try:
            out.append(start + dt.timedelta(days=i))
        except OverflowError:
            break
    return out


class AsOf:
    """An evaluation instant and its calendar reading in one dataset's zone."""

    __slots__ = ("instant", "micros", "zone", "today", "today_day")

    def __init__(self, instant: Optional[dt.datetime], zone: ZoneInfo):
        if instant is None:
            instant = dt.datetime.now(UTC)
        if instant.tzinfo is None:
            raise InvalidArgument("as_of", "instant needs a UTC offset or Z")
        check_instant(instant)   # every zone's reading of it stays inside the calendar
        self.instant = instant
        self.micros = to_micros(instant)
        self.zone = zone
        self.today = instant.astimezone(zone).date()
        self.today_day = day_number(self.today)

    def resolve(self, r: TimeRange) -> Tuple[int, int]:
        """The closed [start_day, end_day] of a range; (MIN_DAY, MAX_DAY) for ever.
        An empty range comes back with start > end."""
        s, e = resolve_dates(r, self.today)
        return (MIN_DAY if s is None else day_number(s), MAX_DAY if e is None else day_number(e))


def resolve_dates(r: TimeRange, today: dt.date) -> Tuple[Optional[dt.date], Optional[dt.date]]:
    """The closed [start, end] local dates of a range for a given today (None = unbounded)."""
    k = r.kind
    if k == "ever":
        return None, None
    if k == "today":
        return today, today
    if k == "yesterday":
        y = _minus(today, 1)
        return y, y
    if k == "last_week":
        monday = _minus(today, today.weekday())
        return _minus(monday, 7), _minus(monday, 1)
    if k == "month_to_date":
        return today.replace(day=1), today
    if k == "previous_month":
        first = today.replace(day=1)
        return shift(first, Offset(-1)), _minus(first, 1)
    if k == "year_to_date":
        return today.replace(month=1, day=1), today
    if k == "last_n_days":
        return _minus(today, r.n - 1), today
    if k == "last_n_months":
        return shift(today, Offset(-r.n, 1)), today
    if k == "custom":
        def bound(b):
            if b is None:
                return None
            return shift(today, b) if isinstance(b, Offset) else b
        return bound(r.start), bound(r.end)
    raise InvalidArgument("range", f"unknown range kind {k!r}")


def local_day_of_micros(micros, zone: ZoneInfo, table=None):
    """Vectorised local day numbers of UTC microsecond instants (numpy int64 array in/out).

    Offsets are constant between a zone's transitions, so instants are bucketed by
    transition and shifted by that bucket's UTC offset. `table` is a zone_transitions()
    result covering the instants (computed here when not given).
    """
    import numpy as np

    micros = np.asarray(micros, dtype=np.int64)
    if micros.size == 0:
        return np.zeros(0, dtype=np.int32)
    secs = micros // 1_000_000
    trans, offsets = table if table is not None else zone_transitions(zone, int(secs.min()), int(secs.max()))
    idx = np.searchsorted(trans, secs, side="right") - 1
    return ((secs + offsets[idx]) // 86400).astype(np.int32)


TRANSITION_SPAN = 1 << 25   # seconds (~388 days): zone tables cover whole spans of this


def zone_transitions(zone: ZoneInfo, lo: int, hi: int):
    """(sorted transition instants in seconds, UTC offset from each) covering [lo, hi]:
    the table of the whole TRANSITION_SPANs around them, computed once per process (a
    scan of a zone over three years cost ~4 ms of every small load)."""
    return _span_transitions(zone, lo // TRANSITION_SPAN, -(-(hi + 1) // TRANSITION_SPAN))


@functools.lru_cache(maxsize=256)
def _span_transitions(zone: ZoneInfo, first: int, end: int):
    trans, offsets = _transitions(zone, first * TRANSITION_SPAN, end * TRANSITION_SPAN)
    trans.flags.writeable = offsets.flags.writeable = False
    return trans, offsets


def _transitions(zone: ZoneInfo, lo: int, hi: int):
    """Sorted transition instants (seconds) covering [lo, hi] and the UTC offset from each."""
    import numpy as np

    # Scan with a 6-hour step and bisect each change of offset to the second.
    def off(t: int) -> int:
        return int(dt.datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset().total_seconds())

    step = 6 * 3600
    t = lo - step
    points = [t]
    offs = [off(t)]
    cur = offs[0]
    end = hi + step
    while t < end:
        nt = t + step
        o = off(nt)
        if o != cur:
            a, b = t, nt  # off(a) == cur, off(b) == o: bisect to the second
            while b - a > 1:
                mid = (a + b) // 2
                if off(mid) == cur:
                    a = mid
                else:
                    b = mid
            points.append(b)
            offs.append(o)
            cur = o
        t = nt
    return np.asarray(points, dtype=np.int64), np.asarray(offs, dtype=np.int64)
