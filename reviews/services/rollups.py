"""The metrics' daily rollups (reviews.models.rollups): rebuilt a day at a time, for the
days touched since the last run (the worker, every minute) or for a range by hand
(`manage.py rebuild_metric_rollups`).

A day's rollup holds the final reviews created on it and decided before its watermark;
the metrics count everything else live, so a late or skipped refresh only makes the
dashboard read more reviews, never show other numbers. The watermark trails the clock by
LATE_COMMIT_MARGIN: a decision is stamped before its transaction commits, and one that
commits later than that margin after its stamp would be missed by the run that covered
its moment (rebuilding its day by hand brings it back).
"""

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from hitl.db import for_update
from hitl.kernel import Actor, as_actor

from ..choices import Choice
from ..models import (
    FINAL_STATES,
    Decision,
    ReasonRollup,
    ReviewerRollup,
    ReviewRequest,
    ReviewRollup,
    ReviewState,
    RollupDay,
)
from ..selectors.metrics_sources import CHUNK, local_midnight, normalise_reason
from ..selectors.metrics_tally import ESCALATING, ReviewerTally, Tally, stored_label

log = logging.getLogger(__name__)

LATE_COMMIT_MARGIN = timedelta(minutes=5)
# A range rebuilt by hand: a year and a bit, as far back as the metrics ever look at once.
MAX_REBUILD_DAYS = 400
# Days one scheduled run rebuilds at most (the newest), so a run stays well within the
# worker's timeout (Q_TIMEOUT) even at a million reviews a month. Older history is built
# once by hand (`rebuild_metric_rollups --since --until`); until then it is counted live.
MAX_REFRESH_DAYS = 7


@dataclass
class RollupReport:
    days: int = 0
    reviews: int = 0
    rows: int = 0
    watermark: datetime | None = None


def rollups_refresh(
    *, actor: Actor | AbstractBaseUser | None, now: datetime | None = None
) -> RollupReport:
    """Rebuild the days of the reviews created or decided since the last run (every day
    that has reviews, the first time)."""
    now = now or timezone.now()
    watermark = now - LATE_COMMIT_MARGIN
    last = RollupDay.objects.aggregate(last=Max("watermark"))["last"]
    touched = ReviewRequest.objects.filter(created_at__lt=watermark)
    if last is not None:
        touched = touched.filter(
            Q(decided_at__gte=last, decided_at__lt=watermark) | Q(created_at__gte=last)
        )
    days = touched.annotate(day=TruncDate("created_at")).values_list("day", flat=True)
    newest = sorted(set(days.distinct()))[-MAX_REFRESH_DAYS:]
    return _rebuild(newest, watermark, as_actor(actor, system="rollups"))


def rollups_rebuild(
    *,
    actor: Actor | AbstractBaseUser | None,
    since: date,
    until: date,
    now: datetime | None = None,
) -> RollupReport:
    """Rebuild every day from `since` to `until`, both included; running it twice gives
    the same rows."""
    if since > until:
        raise ValueError(f"since ({since}) is after until ({until}).")
    count = (until - since).days + 1
    if count > MAX_REBUILD_DAYS:
        raise ValueError(f"{count} days asked; at most {MAX_REBUILD_DAYS} at a time.")
    days = [since + timedelta(days=i) for i in range(count)]
    watermark = (now or timezone.now()) - LATE_COMMIT_MARGIN
    return _rebuild(days, watermark, as_actor(actor, system="rollups"))


def _rebuild(days: list[date], watermark: datetime, actor: Actor) -> RollupReport:
    report = RollupReport(watermark=watermark)
    for day in days:
        reviews, rows = _rebuild_day(day, watermark)
        report.days += 1
        report.reviews += reviews
        report.rows += rows
    log.info(
        "%s rebuilt %s metric rollup days (%s reviews)", actor.label, len(days), report.reviews
    )
    return report


def _rebuild_day(day: date, watermark: datetime) -> tuple[int, int]:
    """Replace one day's rollups, under its row's lock (two workers rebuild it in turn)."""
    with transaction.atomic():
        now = timezone.now()
        head, _ = for_update(RollupDay.objects.all()).get_or_create(
            day=day, defaults={"watermark": watermark, "built_at": now}
        )
        for model in (ReviewRollup, ReviewerRollup, ReasonRollup):
            model.objects.filter(day=head).delete()
        reviews = ReviewRequest.objects.filter(
            Q(decided_at__lt=watermark) | Q(decided_at__isnull=True),
            created_at__gte=local_midnight(day),
            created_at__lt=local_midnight(day + timedelta(days=1)),
            state__in=FINAL_STATES,
        )
        tallies, counted = _tally_reviews(reviews, now)
        reviewers, reasons = _tally_decisions(reviews)
        rows = [
            ReviewRollup(day=head, **_slice(key), **_columns(tally))
            for key, tally in tallies.items()
        ]
        rows += [
            ReviewerRollup(day=head, reviewer_id=reviewer, **_slice(key), **vars(tally))
            for (key, reviewer), tally in reviewers.items()
        ]
        rows += [
            ReasonRollup(day=head, choice=choice, reason=reason, count=n, **_slice(key))
            for (key, choice, reason), n in reasons.items()
        ]
        for model in (ReviewRollup, ReviewerRollup, ReasonRollup):
            model.objects.bulk_create([r for r in rows if type(r) is model], batch_size=CHUNK)
        head.watermark, head.built_at = watermark, now
        head.save(update_fields=["watermark", "built_at"])
    return counted, len(rows)


def _was_escalated(review_field: str) -> Exists:
    # Kept per slice: the escalation owner of a queue sees its escalated reviews only.
    return Exists(
        Decision.objects.filter(review=OuterRef(review_field), state_after=ReviewState.ESCALATED)
    )


def _key(row: dict, prefix: str = "") -> tuple:
    return (
        row[f"{prefix}tenant"],
        row[f"{prefix}queue_id"],
        row[f"{prefix}action_name"],
        stored_label(row[f"{prefix}versions"], "agent"),
        stored_label(row[f"{prefix}policy"], "rule"),
        row["was_escalated"],
    )


def _slice(key: tuple) -> dict:
    tenant, queue_id, action_name, agent_version, rule, was_escalated = key
    return {
        "tenant": tenant,
        "queue_id": queue_id,
        "action_name": action_name,
        "agent_version": agent_version,
        "rule": rule,
        "was_escalated": was_escalated,
    }


def _columns(tally: Tally) -> dict:
    columns = vars(tally).copy()
    del columns["open"]  # a rollup holds final reviews only
    return columns


def _tally_reviews(reviews, now: datetime) -> tuple[dict[tuple, Tally], int]:
    tallies: dict[tuple, Tally] = defaultdict(Tally.sparse)
    escalated = Exists(
        Decision.objects.filter(review=OuterRef("pk"), choice__in=sorted(ESCALATING))
    )
    rows = reviews.values(
        "state", "created_at", "decided_at", "due_at", "tenant", "queue_id", "action_name",
        "versions", "policy",
    ).annotate(escalated_by=escalated, was_escalated=_was_escalated("pk"))  # fmt: skip
    counted = 0
    for row in rows.iterator(chunk_size=CHUNK):
        tallies[_key(row)].add_review(row, escalated=row["escalated_by"], now=now)
        counted += 1
    return tallies, counted


_DECISION_FIELDS = (
    "reviewer_id", "choice", "reason", "opened_at", "decided_at", "review__tenant",
    "review__queue_id", "review__action_name", "review__versions", "review__policy",
)  # fmt: skip


def _tally_decisions(reviews) -> tuple[dict[tuple, ReviewerTally], Counter]:
    reviewers: dict[tuple, ReviewerTally] = defaultdict(ReviewerTally.sparse)
    reasons: Counter = Counter()
    rows = (
        Decision.objects.filter(review__in=reviews.values("pk"))
        .values(*_DECISION_FIELDS)
        .annotate(was_escalated=_was_escalated("review_id"))
    )
    for d in rows.iterator(chunk_size=CHUNK):
        key = _key(d, "review__")
        reviewers[(key, d["reviewer_id"])].add_decision(d)
        if d["choice"] != Choice.APPROVE and d["reason"].strip():
            reasons[(key, d["choice"], normalise_reason(d["reason"]))] += 1
    return reviewers, reasons
