"""Mergeable tallies: the figures of any set of reviews as counts and histograms, so a day's
tally built once (a rollup) adds to the tally of reviews counted live.

Times in queue are kept as histograms with fixed, logarithmic bucket edges (about 2 % wide),
each bucket holding its count, smallest and largest value. A percentile is exact whenever
the ranks it needs fall on a bucket's smallest or largest value, or in a bucket of one
value (every hand-checked dataset, and in practice any small population); otherwise it is
interpolated inside one bucket, within 2 % of the value.

Two shapes of the same buckets: `SparseHistogram` holds only the buckets that have values
(a rollup row stores it as JSON, one day's slice is small), `Histogram` every bucket of the
range in three fixed arrays, so the figures of a period take the same memory whatever the
number of reviews or of distinct times behind them.
"""

import json
import math
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

from ..choices import SPECS, Choice
from ..models import DECIDED_STATES, OPEN_STATES, ReviewState

CLOSED = (*DECIDED_STATES, ReviewState.EXPIRED)
FAST_DECISION = timedelta(seconds=10)
# Decisions that hand the review to someone else: the escalation rate counts them.
ESCALATING = frozenset(spec.value for spec in SPECS if spec.escalates)

# 50 buckets per factor e (a bucket is ~2 % wide); zero and below share one bucket.
_BUCKETS_PER_E = 50
_NOT_POSITIVE = -(10**6)
# The dense range, e^-9 to e^16: 7 ms to 17 years in minutes, 0.1 ms to 100 days in seconds.
# A value beyond it shares one bucket with its kind (below or above), which still keeps
# its smallest and largest value.
_LOW_KEY, _HIGH_KEY = -9 * _BUCKETS_PER_E, 16 * _BUCKETS_PER_E
# Slots: not positive, below the range, the range's buckets, above it.
_SLOTS = _HIGH_KEY - _LOW_KEY + 3

Cell = tuple[int, int, float, float]  # bucket, count, smallest, largest


def bucket(value: float) -> int:
    """A value's bucket as stored (a rollup's JSON key)."""
    return math.floor(math.log(value) * _BUCKETS_PER_E) if value > 0 else _NOT_POSITIVE


def _slot(key: int) -> int:
    if key == _NOT_POSITIVE:
        return 0
    return min(max(key - _LOW_KEY + 2, 1), _SLOTS - 1)


def _slot_key(slot: int) -> int:
    return _NOT_POSITIVE if slot == 0 else slot + _LOW_KEY - 2


def cells(hist: Any) -> Iterator[Cell]:
    """The non-empty buckets of a histogram of either shape or as stored (JSON keys are
    strings), in no particular order."""
    if isinstance(hist, Histogram):
        yield from hist.cells()
        return
    for key, (count, low, high) in hist.items():
        yield int(key), int(count), low, high


class SparseHistogram(dict):
    """bucket -> [count, smallest, largest], the buckets with values only: a rollup row's
    histogram as stored, and one slice's tally while it is built."""

    def add(self, value: float) -> None:
        self.add_cell(bucket(value), 1, value, value)

    def add_cell(self, key: int, count: int, low: float, high: float) -> None:
        cell = self.get(key)
        if cell is None:
            self[key] = [count, low, high]
        else:
            cell[0] += count
            cell[1] = min(cell[1], low)
            cell[2] = max(cell[2], high)

    def merge(self, other: Any) -> None:
        for cell in cells(other):
            self.add_cell(*cell)

    def columns(self) -> tuple[list, list, list]:
        ordered = [self[key] for key in sorted(self)]
        return [c[0] for c in ordered], [c[1] for c in ordered], [c[2] for c in ordered]


class Histogram:
    """Every bucket of the range, in three arrays allocated with the first value: a
    period's figures for one slice label, whatever their number of values."""

    __slots__ = ("_counts", "_first", "_highs", "_last", "_lows")

    def __init__(self) -> None:
        self._counts: array | None = None
        self._lows = self._highs = self._counts
        # The slots that may hold values, so merges and percentiles skip the empty ends.
        self._first, self._last = _SLOTS, -1

    def _allocate(self) -> None:
        self._counts = array("q", bytes(8 * _SLOTS))
        self._lows = array("d", [math.inf]) * _SLOTS
        self._highs = array("d", [-math.inf]) * _SLOTS

    def add(self, value: float) -> None:
        self.add_cell(bucket(value), 1, value, value)

    def add_cell(self, key: int, count: int, low: float, high: float) -> None:
        self._put(_slot(key), count, low, high)

    def _put(self, slot: int, count: int, low: float, high: float) -> None:
        if self._counts is None:
            self._allocate()
        self._counts[slot] += count
        if low < self._lows[slot]:
            self._lows[slot] = low
        if high > self._highs[slot]:
            self._highs[slot] = high
        self._first = min(self._first, slot)
        self._last = max(self._last, slot)

    def merge(self, other: Any) -> None:
        if not isinstance(other, Histogram):
            for cell in cells(other):
                self.add_cell(*cell)
            return
        if other._counts is None:
            return
        for slot in range(other._first, other._last + 1):
            if count := other._counts[slot]:
                self._put(slot, count, other._lows[slot], other._highs[slot])

    def cells(self) -> Iterator[Cell]:
        if self._counts is None:
            return
        for slot in range(self._first, self._last + 1):
            if count := self._counts[slot]:
                yield _slot_key(slot), count, self._lows[slot], self._highs[slot]

    def columns(self) -> tuple[array, array, array]:
        if self._counts is None:
            return array("q"), array("d"), array("d")
        # Empty buckets inside the span stay: a zero count never holds a rank.
        span = slice(self._first, self._last + 1)
        return self._counts[span], self._lows[span], self._highs[span]


def percentile(hist: Histogram | SparseHistogram, q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont); the
    median as statistics.median computes it."""
    counts, lows, highs = hist.columns()
    ends = list(accumulate(counts))  # the rank just past each bucket
    total = ends[-1] if ends else 0
    if not total:
        return None

    def value_at(rank: int) -> float:
        i = bisect_right(ends, rank)
        count, low, high = counts[i], lows[i], highs[i]
        offset = rank - (ends[i] - count)
        if offset == 0 or low == high:
            return low
        if offset == count - 1:
            return high
        return low + (high - low) * offset / (count - 1)

    position = (total - 1) * q
    low = int(position)
    a = value_at(low)
    if low + 1 >= total or position == low:
        return a
    b = value_at(low + 1)
    if q == 0.5:
        return (a + b) / 2
    return a + (b - a) * (position - low)


def stored_label(document: Any, key: str) -> str:
    """A review's versions.agent or policy.rule as the rollups store it ("" when unset)."""
    value = document.get(key) if isinstance(document, dict) else None
    return str(value) if value else ""


def member_label(text: str | None) -> str:
    """stored_label of a document's member read as JSON text (JsonMember)."""
    return stored_label({"member": None if text is None else json.loads(text)}, "member")


@dataclass
class Tally:
    """Counts and times in queue of a set of reviews (a rollup row's columns). A rollup row
    and the live part's slices are built with a SparseHistogram."""

    reviews: int = 0
    approved: int = 0
    edited: int = 0
    rejected: int = 0
    resolved: int = 0
    expired: int = 0
    cancelled: int = 0
    open: int = 0
    escalated: int = 0
    with_sla: int = 0
    breached: int = 0
    minutes: Histogram | SparseHistogram = field(default_factory=Histogram)

    COUNTS = ("approved", "edited", "rejected", "resolved", "expired", "cancelled")
    SUMMED = (*COUNTS, "reviews", "open", "escalated", "with_sla", "breached")

    @classmethod
    def sparse(cls) -> "Tally":
        return cls(minutes=SparseHistogram())

    def add_review(self, row: Mapping[str, Any], *, escalated: bool, now: datetime) -> None:
        """One review: its state, created_at, decided_at and due_at."""
        state, decided_at, due_at = row["state"], row["decided_at"], row["due_at"]
        self.reviews += 1
        if state in OPEN_STATES:
            self.open += 1
        elif state in self.COUNTS:
            setattr(self, state, getattr(self, state) + 1)
        if state in CLOSED and escalated:
            self.escalated += 1
        if state in DECIDED_STATES and decided_at:
            self.minutes.add((decided_at - row["created_at"]).total_seconds() / 60)
        if due_at and state != ReviewState.CANCELLED:
            self.with_sla += 1
            moment = decided_at if state in DECIDED_STATES else now
            if state == ReviewState.EXPIRED or moment > due_at:
                self.breached += 1

    def merge(self, other: "Tally | Mapping[str, Any]") -> None:
        get = other.get if isinstance(other, Mapping) else other.__getattribute__
        for name in self.SUMMED:
            setattr(self, name, getattr(self, name) + (get(name) or 0))
        self.minutes.merge(get("minutes") or {})

    @property
    def closed(self) -> int:
        return self.approved + self.edited + self.rejected + self.resolved + self.expired


@dataclass
class ReviewerTally:
    """One reviewer's decisions: how many, how many approvals, how fast."""

    decisions: int = 0
    approvals: int = 0
    timed: int = 0
    fast: int = 0
    seconds: Histogram | SparseHistogram = field(default_factory=Histogram)

    @classmethod
    def sparse(cls) -> "ReviewerTally":
        return cls(seconds=SparseHistogram())

    def add_decision(self, row: Mapping[str, Any]) -> None:
        self.decisions += 1
        self.approvals += row["choice"] == Choice.APPROVE
        if row["opened_at"] is not None:
            spent = (row["decided_at"] - row["opened_at"]).total_seconds()
            self.timed += 1
            self.fast += spent < FAST_DECISION.total_seconds()
            self.seconds.add(spent)

    def merge(self, other: Mapping[str, Any]) -> None:
        for name in ("decisions", "approvals", "timed", "fast"):
            setattr(self, name, getattr(self, name) + (other.get(name) or 0))
        self.seconds.merge(other.get("seconds") or {})


def merged(tallies: Iterable[Tally]) -> Tally:
    """The sum of the tallies (the only one itself, not a copy: the dashboard's series
    should not hold a day's histogram twice)."""
    tallies = list(tallies)
    if len(tallies) == 1:
        return tallies[0]
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total
