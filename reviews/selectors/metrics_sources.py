"""Where the metrics' tallies come from: the rollups for the whole days they cover, and the
reviews themselves, counted live through indexes, for everything a rollup does not hold
(open reviews, reviews decided since the day's watermark, days never built, and the partial
days at the ends of a period). Every read streams; memory depends on days x slices only.
"""

from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Count, Exists, F, Func, OuterRef, Q, QuerySet, Sum, TextField
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..choices import Choice
from ..models import (
    FINAL_STATES,
    OPEN_STATES,
    Decision,
    ReasonRollup,
    ReviewerRollup,
    ReviewRequest,
    ReviewRollup,
    RollupDay,
)
from .access import visible_where
from .metrics_grouped import REVIEW_GROUPS, Group, grouped_reviewers, grouped_tallies
from .metrics_tally import ESCALATING, ReviewerTally, Tally, member_label

# Rows per fetch of the live final reviews (a live row carries labels, not JSON documents).
CHUNK = 500
TOP_REASONS = 10


@dataclass
class Gathered:
    # (slice name, label) -> tally; slices are day, queue, action, agent_version, rule.
    groups: dict[Group, Tally] = field(default_factory=lambda: defaultdict(Tally))
    reviewers: dict[str, ReviewerTally] = field(default_factory=lambda: defaultdict(ReviewerTally))
    top_reasons: list[dict[str, Any]] = field(default_factory=list)
    recent_comments: list[dict[str, Any]] = field(default_factory=list)


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def local_day(moment: datetime) -> date:
    return timezone.localtime(moment).date()


def whole_days(since: datetime, until: datetime) -> list[date]:
    """The local days that lie entirely in [since, until)."""
    day = local_day(since)
    if local_midnight(day) < since:
        day += timedelta(days=1)
    days = []
    while local_midnight(day + timedelta(days=1)) <= until:
        days.append(day)
        day += timedelta(days=1)
    return days


@contextmanager
def snapshot() -> Iterator[None]:
    """One consistent view of rollups and reviews on PostgreSQL, so a refresh committing
    between two reads neither drops nor doubles a review. Inside a caller's transaction
    its own snapshot rules."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def gather(
    *, user: AbstractBaseUser, filters, tenant: str | None, population, now: datetime
) -> Gathered:
    """Tallies per slice label, per reviewer, the top reasons and the recent comments of
    `population` (the reviews metrics.compute measures)."""
    days = whole_days(filters.since, filters.until)
    # A range, not the list of days: the statements (and their number) stay the same
    # whether or not the period holds a whole day.
    first, last = (days[0], days[-1]) if days else (date.max, date.min)
    covered = dict(
        RollupDay.objects.filter(day__gte=first, day__lte=last).values_list("day", "watermark")
    )
    where = _rollup_filter(user=user, filters=filters, tenant=tenant, first=first, last=last)
    out = Gathered(
        groups=grouped_tallies(ReviewRollup.objects.filter(where), _REVIEW_COUNTS),
        reviewers=grouped_reviewers(ReviewerRollup.objects.filter(where), _REVIEWER_COUNTS),
    )
    live, closed = _live(population, filters.since, filters.until, covered)

    def in_rollup(created_at, state, decided_at) -> bool:
        watermark = covered.get(local_day(created_at))
        return bool(
            watermark and state in FINAL_STATES and (decided_at is None or decided_at < watermark)
        )

    _count_open_reviews(population, out.groups, now)
    _count_live_reviews(closed, in_rollup, out.groups, now)
    reasons = _count_live_decisions(live, in_rollup, out.reviewers)
    out.top_reasons = _top_reasons(ReasonRollup.objects.filter(where), reasons)
    out.recent_comments = _recent_comments(population, filters.since)
    return out


def _count_open_reviews(population, groups: dict[Group, Tally], now: datetime) -> None:
    """Open reviews are never in a rollup and add counts only (no time in queue, no
    escalation yet): the database counts them per slice, however many there are."""
    rows = (
        population.filter(state__in=OPEN_STATES)
        .annotate(
            day=TruncDate("created_at"),
            agent=JsonMember("versions", "agent"),
            rule=JsonMember("policy", "rule"),
        )
        .values("day", "queue__slug", "action_name", "agent", "rule")
        .annotate(
            n=Count("pk"),
            with_sla=Count("pk", filter=Q(due_at__isnull=False)),
            breached=Count("pk", filter=Q(due_at__lt=now)),
        )
        .order_by()
    )
    for row in rows:
        tally = Tally(
            reviews=row["n"], open=row["n"], with_sla=row["with_sla"], breached=row["breached"]
        )
        for name, value in zip(REVIEW_GROUPS, _live_key(row), strict=True):
            groups[(name, value)].merge(tally)


def _count_live_reviews(live, in_rollup, groups: dict[Group, Tally], now: datetime) -> None:
    """The final reviews a rollup does not hold, one row each (their times in queue)."""
    escalated = Exists(
        Decision.objects.filter(review=OuterRef("pk"), choice__in=sorted(ESCALATING))
    )
    by_key: dict[tuple, Tally] = defaultdict(Tally.sparse)
    rows = live.values(*_LIVE_FIELDS).annotate(
        agent=JsonMember("versions", "agent"),
        rule=JsonMember("policy", "rule"),
        was_escalated_by=escalated,
    )
    for row in _stream(rows):
        if not in_rollup(row["created_at"], row["state"], row["decided_at"]):
            by_key[_live_key(row)].add_review(row, escalated=row["was_escalated_by"], now=now)
    for key, tally in by_key.items():
        for name, value in zip(REVIEW_GROUPS, key, strict=True):
            groups[(name, value)].merge(tally)


def _count_live_decisions(live, in_rollup, reviewers: dict[str, ReviewerTally]) -> Counter:
    reasons: Counter = Counter()
    decisions = Decision.objects.filter(review__in=live.values("pk")).order_by().values(
        "reviewer__username", "choice", "reason", "opened_at", "decided_at",
        "review__created_at", "review__state", "review__decided_at",
    )  # fmt: skip
    for d in _stream(decisions):
        if not in_rollup(d["review__created_at"], d["review__state"], d["review__decided_at"]):
            reviewers[d["reviewer__username"]].add_decision(d)
            if d["choice"] != Choice.APPROVE and d["reason"].strip():
                reasons[(d["choice"], normalise_reason(d["reason"]))] += 1
    return reasons


def normalise_reason(reason: str) -> str:
    """A reason as counted among the top reasons: case, spacing and end marks folded."""
    return " ".join(reason.lower().strip(" .!").split())[:120]


_REVIEW_COUNTS = (*Tally.COUNTS, "reviews", "escalated", "with_sla", "breached")
_REVIEWER_COUNTS = ("decisions", "approvals", "timed", "fast")
_LIVE_FIELDS = ("state", "created_at", "decided_at", "due_at", "action_name", "queue__slug")


class JsonMember(Func):
    """One key of a JSON column as JSON text (NULL when missing or not in an object): a
    live row carries its label, not the whole document (a policy snapshot is large)."""

    output_field = TextField()

    def __init__(self, column: str, key: str) -> None:
        if not key.isidentifier():
            raise ValueError(f"Not a plain key: {key!r}")  # it goes into the SQL as is
        super().__init__(F(column))
        self.key = key

    def as_sql(self, compiler, connection, **extra):
        path = f"'{self.key}'" if connection.vendor == "postgresql" else f"'$.{self.key}'"
        # The `->` operator gives JSON text on both (SQLite >= 3.38).
        template = f"CAST((%(expressions)s -> {path}) AS text)"
        return super().as_sql(compiler, connection, template=template, **extra)


def _live_key(row) -> tuple:
    return (
        row["day"] if "day" in row else local_day(row["created_at"]),
        row["queue__slug"],
        row["action_name"],
        member_label(row["agent"]) or "-",
        member_label(row["rule"]) or "-",
    )


def _stream(qs: QuerySet) -> Iterator[dict]:
    return qs.iterator(chunk_size=CHUNK)


def _rollup_filter(*, user, filters, tenant: str | None, first: date, last: date) -> Q:
    """The rollup rows of these days a person may see (as reviews_visible_to sees final
    reviews: a rollup row knows whether its reviews were ever escalated), narrowed as the
    reviews would be."""
    # Every rollup row's day is covered: the range of whole days selects exactly them.
    where = Q(day__day__gte=first, day__day__lte=last)
    if not user.is_active:
        return where & Q(pk__in=[])
    visible = visible_where(user=user, escalated=Q(was_escalated=True))
    if visible is not None:
        where &= visible
    if tenant is not None:
        where &= Q(tenant=tenant)
    for name, column in (
        ("queue", "queue__slug"),
        ("action", "action_name"),
        ("agent_version", "agent_version"),
        ("rule", "rule"),
    ):
        if getattr(filters, name):
            where &= Q(**{column: getattr(filters, name)})
    return where


def _live(population, since: datetime, until: datetime, covered: dict[date, datetime]):
    """The reviews of the period a rollup may not hold, each arm index-backed: the open
    ones, the ones decided since the oldest watermark, and every review of days not
    covered (the caller drops the few a newer watermark already counted). Returned twice:
    all of them (their decisions), and the final ones only (the open ones are counted
    apart, by the database)."""
    arms = []
    start = since
    for day in sorted(covered):
        if local_midnight(day) > start:
            arms.append(Q(created_at__gte=start, created_at__lt=local_midnight(day)))
        start = local_midnight(day + timedelta(days=1))
    if start < until:
        arms.append(Q(created_at__gte=start, created_at__lt=until))
    if covered:
        arms.append(Q(decided_at__gte=min(covered.values())))
    every = population.filter(reduce(or_, arms, Q(state__in=OPEN_STATES)))
    return every, population.filter(reduce(or_, arms, Q(pk__in=[])), state__in=FINAL_STATES)


def _top_reasons(rollups: QuerySet, live: Counter) -> list[dict[str, Any]]:
    """The ten most given reasons: the rollups' top ten plus the live ones, each with its
    whole count (a live reason's rollup count is read too, so none is undercounted)."""
    totals = rollups.values("choice", "reason").annotate(n=Sum("count"))
    counts = Counter({(r["choice"], r["reason"]): r["n"] for r in totals.order_by(
        "-n", "choice", "reason"
    )[:TOP_REASONS]})  # fmt: skip
    asked = reduce(or_, (Q(choice=c, reason=r) for c, r in live), Q(pk__isnull=True))
    for row in totals.filter(asked):
        counts[(row["choice"], row["reason"])] = row["n"]
    counts.update(live)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    return [{"choice": c, "reason": r, "count": n} for (c, r), n in ranked]


def _recent_comments(population: QuerySet[ReviewRequest], since: datetime) -> list[dict]:
    # A decision comes after its review was created: the bound lets the index on
    # decided_at stop early.
    rows = (
        Decision.objects.filter(review__in=population.values("pk"), decided_at__gte=since)
        .exclude(choice=Choice.APPROVE)
        .exclude(reason="")
        .order_by("-decided_at")
        .values("choice", "reviewer__username", "reason", "decided_at")[:10]
    )
    return [
        {
            "choice": d["choice"],
            "reviewer": d["reviewer__username"],
            "reason": d["reason"],
            "decided_at": d["decided_at"],
        }
        for d in rows
    ]
