"""Metrics leads need, shared by the dashboard and GET /api/v1/metrics/.

Population: the reviews *created* in [since, until), within what the person may see, and
narrowed by the filters. A review counts as *closed* once approved, edited, rejected or
expired (a cancelled one was withdrawn by its agent and is left out of the rates).

The figures are read from daily rollups plus what they do not hold yet, counted live
(metrics_sources); they are merged as tallies (metrics_tally). Memory and the number of
queries depend on days x slices, never on the number of reviews.
"""

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from policies.models import Tenant

from ..models import DECIDED_STATES, ReviewRequest, ReviewState
from . import queues_for, reviews_visible_to, tenants_of
from .metrics_sources import gather, normalise_reason, snapshot
from .metrics_tally import (
    CLOSED,
    ESCALATING,
    FAST_DECISION,
    ReviewerTally,
    Tally,
    merged,
    percentile,
)

__all__ = [
    "CLOSED",
    "DECIDED",
    "ESCALATING",
    "FAST_DECISION",
    "SLICES",
    "Figures",
    "Metrics",
    "MetricsFilter",
    "as_dict",
    "compute",
    "normalise_reason",
    "population",
    "tenant_for",
    "workload",
]

DECIDED = DECIDED_STATES
# The slices the figures are cut by (besides days, for the series).
SLICES = ("queue", "action", "agent_version", "rule")


@dataclass(frozen=True)
class MetricsFilter:
    """What to measure: a period and optional narrowing, as the API's query parameters."""

    since: datetime
    until: datetime
    queue: str = ""
    action: str = ""
    agent_version: str = ""
    rule: str = ""
    bucket: str = "day"
    # One tenant at a time (None: the person's first tenant); "*" mixes every tenant and is
    # for platform admins only.
    tenant: str | None = None

    @classmethod
    def last_days(cls, days: int = 28, **kwargs) -> "MetricsFilter":
        until = timezone.now()
        return cls(since=until - timedelta(days=days), until=until, **kwargs)


@dataclass
class Figures:
    """Rates and times for one population of reviews."""

    reviews: int = 0
    closed: int = 0
    open: int = 0
    approved: int = 0
    edited: int = 0
    rejected: int = 0
    expired: int = 0
    escalated: int = 0
    approval_rate: float | None = None
    edit_rate: float | None = None
    rejection_rate: float | None = None
    escalation_rate: float | None = None
    expiry_rate: float | None = None
    median_minutes_in_queue: float | None = None
    p90_minutes_in_queue: float | None = None
    sla_breach_rate: float | None = None


@dataclass
class Metrics:
    """Everything the dashboard and the API show."""

    filters: MetricsFilter
    overall: Figures
    slices: dict[str, dict[str, Figures]] = field(default_factory=dict)
    series: list[dict[str, Any]] = field(default_factory=list)
    top_reasons: list[dict[str, Any]] = field(default_factory=list)
    recent_comments: list[dict[str, Any]] = field(default_factory=list)
    reviewers: list[dict[str, Any]] = field(default_factory=list)


def tenant_for(*, user: AbstractBaseUser, asked: str | None) -> str | None:
    """The tenant whose figures this person sees: the one asked for, else the first of
    theirs; None means every tenant (a platform admin's explicit "*")."""
    if asked == "*":
        if not user.is_superuser:
            raise PermissionDenied("Only a platform administrator sees every tenant at once.")
        return None
    if asked is not None:
        if not Tenant.exists(asked):
            raise Http404(f"No tenant {asked!r}.")
        if not user.is_superuser and not queues_for(user=user).filter(tenant=asked).exists():
            # Zeros would look like a quiet week; the answer is that it is not theirs.
            raise PermissionDenied(f"You work in no queue of tenant {asked!r}.")
        return asked
    return min(tenants_of(user=user), default="")


def population(*, user: AbstractBaseUser, filters: MetricsFilter) -> QuerySet[ReviewRequest]:
    """The reviews the figures are computed from."""
    return _population(user=user, filters=filters)[0]


def _population(
    *, user: AbstractBaseUser, filters: MetricsFilter
) -> tuple[QuerySet[ReviewRequest], str | None]:
    qs = reviews_visible_to(user=user).filter(
        created_at__gte=filters.since, created_at__lt=filters.until
    )
    tenant = tenant_for(user=user, asked=filters.tenant)
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    if filters.queue:
        qs = qs.filter(queue__slug=filters.queue)
    if filters.action:
        qs = qs.filter(action_name=filters.action)
    if filters.agent_version:
        qs = qs.filter(versions__agent=filters.agent_version)
    if filters.rule:
        qs = qs.filter(policy__rule=filters.rule)
    return qs, tenant


def compute(*, user: AbstractBaseUser, filters: MetricsFilter, now=None) -> Metrics:
    """All figures for one request, in a fixed number of queries."""
    now = now or timezone.now()
    qs, tenant = _population(user=user, filters=filters)
    with snapshot():
        parts = gather(user=user, filters=filters, tenant=tenant, population=qs, now=now)
    # Say which tenant the figures are for: the default one is chosen, not asked for.
    filters = replace(filters, tenant="*" if tenant is None else tenant)
    days = {label: t for (name, label), t in parts.groups.items() if name == "day"}
    metrics = Metrics(filters=filters, overall=_figures(merged(days.values())))
    for name in SLICES:
        labels = sorted(label for slice_name, label in parts.groups if slice_name == name)
        metrics.slices[name] = {label: _figures(parts.groups[(name, label)]) for label in labels}
    periods: dict[date, list[Tally]] = defaultdict(list)
    for day, tally in days.items():
        periods[_bucket(day, filters.bucket)].append(tally)
    metrics.series = [
        {"period": start.isoformat(), **_figures(merged(periods[start])).__dict__}
        for start in sorted(periods)
    ]
    metrics.top_reasons = parts.top_reasons
    metrics.recent_comments = parts.recent_comments
    metrics.reviewers = [
        _reviewer_row(name, tally) for name, tally in sorted(parts.reviewers.items())
    ]
    return metrics


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _figures(t: Tally) -> Figures:
    closed = t.closed
    return Figures(
        reviews=t.reviews,
        closed=closed,
        open=t.open,
        approved=t.approved,
        edited=t.edited,
        rejected=t.rejected,
        expired=t.expired,
        escalated=t.escalated,
        approval_rate=_rate(t.approved, closed),
        edit_rate=_rate(t.edited, closed),
        rejection_rate=_rate(t.rejected, closed),
        escalation_rate=_rate(t.escalated, closed),
        expiry_rate=_rate(t.expired, closed),
        median_minutes_in_queue=_rounded(percentile(t.minutes, 0.5), 2),
        p90_minutes_in_queue=_rounded(percentile(t.minutes, 0.9), 2),
        sla_breach_rate=_rate(t.breached, t.with_sla),
    )


def _bucket(day: date, size: str) -> date:
    return day - timedelta(days=day.weekday()) if size == "week" else day


def _reviewer_row(reviewer: str, t: ReviewerTally) -> dict[str, Any]:
    """How often a reviewer approves and how fast they decide. Many decisions, nearly all
    approvals, mostly in seconds: that reviewer may be rubber-stamping."""
    approval_rate = _rate(t.approvals, t.decisions)
    fast_rate = _rate(t.fast, t.timed)
    return {
        "reviewer": reviewer,
        "decisions": t.decisions,
        "approval_rate": approval_rate,
        "fast_decision_rate": fast_rate,
        "median_seconds": _rounded(percentile(t.seconds, 0.5), 1),
        "rubber_stamp": bool(
            t.decisions >= 20 and (approval_rate or 0) >= 0.95 and (fast_rate or 0) >= 0.5
        ),
    }


def workload(*, user: AbstractBaseUser, tenant: str | None, now=None) -> list[dict[str, Any]]:
    """Open and overdue reviews per assignee (and unassigned) in the person's queues, of
    one tenant (None: every tenant, for a platform admin who asked for all)."""
    from django.db.models import Count, Q

    now = now or timezone.now()
    visible = reviews_visible_to(user=user)
    if tenant is not None:
        visible = visible.filter(tenant=tenant)
    rows = (
        visible.filter(state__in=(ReviewState.PENDING, ReviewState.ESCALATED))
        .values("assignee__username")
        .annotate(open=Count("pk"), overdue=Count("pk", filter=Q(due_at__lt=now)))
        .order_by("-overdue", "-open")
    )
    return [
        {
            "reviewer": r["assignee__username"] or "(unassigned)",
            "open": r["open"],
            "overdue": r["overdue"],
        }
        for r in rows
    ]


def as_dict(metrics: Metrics) -> dict[str, Any]:
    """The JSON shape of GET /api/v1/metrics/."""
    f = metrics.filters
    return {
        "filters": {
            "since": f.since.isoformat(),
            "until": f.until.isoformat(),
            "queue": f.queue,
            "action": f.action,
            "agent_version": f.agent_version,
            "rule": f.rule,
            "bucket": f.bucket,
            "tenant": f.tenant,
        },
        "overall": metrics.overall.__dict__,
        "slices": {
            name: {label: figures.__dict__ for label, figures in groups.items()}
            for name, groups in metrics.slices.items()
        },
        "series": metrics.series,
        "top_reasons": metrics.top_reasons,
        "recent_comments": metrics.recent_comments,
        "reviewers": metrics.reviewers,
    }
