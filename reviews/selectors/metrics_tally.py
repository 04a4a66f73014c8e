"""Mergeable tallies: the figures of any set of reviews as counts and histograms, so a day's
tally built once (a rollup) adds to the tally of reviews counted live.

Times in queue are kept as histograms with fixed, logarithmic bucket edges (about 2 % wide),
each bucket holding its count, smallest and largest value. A percentile is exact whenever
the ranks it needs fall on a bucket's smallest or largest value, or in a bucket of one
value (every hand-checked dataset, and in practice any small population); otherwise it is
interpolated inside one bucket, within 2 % of the value. Memory is bounded by the number of
buckets, never by the number of reviews.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
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

Histogram = dict[int, list[float]]  # bucket -> [count, smallest, largest]


def hist_add(hist: Histogram, value: float) -> None:
    key = math.floor(math.log(value) * _BUCKETS_PER_E) if value > 0 else _NOT_POSITIVE
    cell = hist.get(key)
    if cell is None:
        hist[key] = [1, value, value]
    else:
        cell[0] += 1
        cell[1] = min(cell[1], value)
        cell[2] = max(cell[2], value)


def hist_merge(into: Histogram, other: Mapping[Any, list[float]]) -> None:
    """Add `other` (as stored: JSON keys are strings) into `into`."""
    for key, (count, low, high) in other.items():
        cell = into.get(int(key))
        if cell is None:
            into[int(key)] = [count, low, high]
        else:
            cell[0] += count
            cell[1] = min(cell[1], low)
            cell[2] = max(cell[2], high)


def _value_at(hist: Histogram, rank: int) -> float:
    start = 0
    for key in sorted(hist):
        count, low, high = hist[key]
        if rank < start + count:
            offset = rank - start
            if offset == 0 or low == high:
                return low
            if offset == count - 1:
                return high
            return low + (high - low) * offset / (count - 1)
        start += int(count)
    raise IndexError(rank)


def percentile(hist: Histogram, q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont); the
    median as statistics.median computes it."""
    total = int(sum(cell[0] for cell in hist.values()))
    if not total:
        return None
    position = (total - 1) * q
    low = int(position)
    a = _value_at(hist, low)
    if low + 1 >= total or position == low:
        return a
    b = _value_at(hist, low + 1)
    if q == 0.5:
        return (a + b) / 2
    return a + (b - a) * (position - low)


def stored_label(document: Any, key: str) -> str:
    """A review's versions.agent or policy.rule as the rollups store it ("" when unset)."""
    value = document.get(key) if isinstance(document, dict) else None
    return str(value) if value else ""


@dataclass
class Tally:
    """Counts and times in queue of a set of reviews (a rollup row's columns)."""

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
    minutes: Histogram = field(default_factory=dict)

    COUNTS = ("approved", "edited", "rejected", "resolved", "expired", "cancelled")

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
            hist_add(self.minutes, (decided_at - row["created_at"]).total_seconds() / 60)
        if due_at and state != ReviewState.CANCELLED:
            self.with_sla += 1
            moment = decided_at if state in DECIDED_STATES else now
            if state == ReviewState.EXPIRED or moment > due_at:
                self.breached += 1

    def merge(self, other: "Tally | Mapping[str, Any]") -> None:
        get = other.get if isinstance(other, Mapping) else other.__getattribute__
        for f in fields(self):
            if f.name == "minutes":
                hist_merge(self.minutes, get("minutes") or {})
            else:
                setattr(self, f.name, getattr(self, f.name) + (get(f.name) or 0))

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
    seconds: Histogram = field(default_factory=dict)

    def add_decision(self, row: Mapping[str, Any]) -> None:
        self.decisions += 1
        self.approvals += row["choice"] == Choice.APPROVE
        if row["opened_at"] is not None:
            spent = (row["decided_at"] - row["opened_at"]).total_seconds()
            self.timed += 1
            self.fast += spent < FAST_DECISION.total_seconds()
            hist_add(self.seconds, spent)

    def merge(self, other: Mapping[str, Any]) -> None:
        for name in ("decisions", "approvals", "timed", "fast"):
            setattr(self, name, getattr(self, name) + (other.get(name) or 0))
        hist_merge(self.seconds, other.get("seconds") or {})


def merged(tallies: Iterable[Tally]) -> Tally:
    """The sum of the tallies (the only one itself, not a copy: a day's histogram is
    large enough that the dashboard's series should not hold it twice)."""
    tallies = list(tallies)
    if len(tallies) == 1:
        return tallies[0]
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total
