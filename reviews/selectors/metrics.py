"""Metrics leads need, shared by the dashboard and GET /api/v1/metrics/.

Population: the reviews *created* in [since, until), within what the person may see, and
narrowed by the filters. A review counts as *closed* once approved, edited, rejected or
expired (a cancelled one was withdrawn by its agent and is left out of the rates).
"""

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from policies.models import Tenant

from ..choices import SPECS, Choice
from ..models import Decision, ReviewRequest, ReviewState
from . import queues_for, reviews_visible_to, tenants_of

CLOSED = (
    ReviewState.APPROVED,
    ReviewState.EDITED,
    ReviewState.REJECTED,
    ReviewState.RESOLVED,
    ReviewState.EXPIRED,
)
DECIDED = (ReviewState.APPROVED, ReviewState.EDITED, ReviewState.REJECTED, ReviewState.RESOLVED)
SLICES = {
    "queue": lambda r: r["queue__slug"],
    "action": lambda r: r["action_name"],
    "agent_version": lambda r: (r["versions"] or {}).get("agent") or "-",
    "rule": lambda r: (r["policy"] or {}).get("rule") or "-",
}
FAST_DECISION = timedelta(seconds=10)

# Decisions that hand the review to someone else: the escalation rate counts them.
ESCALATING = frozenset(spec.value for spec in SPECS if spec.escalates)


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
    # Say which tenant the figures are for: the default one is chosen, not asked for.
    filters = replace(filters, tenant="*" if tenant is None else tenant)
    rows = list(
        qs.values(
            "pk",
            "state",
            "created_at",
            "decided_at",
            "due_at",
            "action_name",
            "queue__slug",
            "versions",
            "policy",
        )
    )
    decisions = list(
        Decision.objects.filter(review__in=qs.values("pk")).values(
            "review_id",
            "choice",
            "reason",
            "reviewer__username",
            "opened_at",
            "decided_at",
        )
    )
    escalated = {d["review_id"] for d in decisions if d["choice"] in ESCALATING}
    metrics = Metrics(filters=filters, overall=_figures(rows, escalated, now))
    for name, key in SLICES.items():
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            groups[key(row)].append(row)
        metrics.slices[name] = {
            label: _figures(group, escalated, now) for label, group in sorted(groups.items())
        }
    metrics.series = _series(rows, escalated, filters, now)
    metrics.top_reasons = _top_reasons(decisions)
    metrics.recent_comments = [
        {
            "choice": d["choice"],
            "reviewer": d["reviewer__username"],
            "reason": d["reason"],
            "decided_at": d["decided_at"],
        }
        for d in sorted(decisions, key=lambda d: d["decided_at"], reverse=True)
        if d["reason"] and d["choice"] != Choice.APPROVE
    ][:10]
    metrics.reviewers = _rubber_stamps(decisions)
    return metrics


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(rows: list[dict], escalated: set[int], now: datetime) -> Figures:
    states = Counter(row["state"] for row in rows)
    closed = sum(states[s] for s in CLOSED)
    minutes = sorted(
        (row["decided_at"] - row["created_at"]).total_seconds() / 60
        for row in rows
        if row["state"] in DECIDED and row["decided_at"]
    )
    with_sla = [row for row in rows if row["due_at"] and row["state"] != ReviewState.CANCELLED]
    breached = sum(
        1
        for row in with_sla
        if (row["decided_at"] if row["state"] in DECIDED else now) > row["due_at"]
        or row["state"] == ReviewState.EXPIRED
    )
    closed_ids = {row["pk"] for row in rows if row["state"] in CLOSED}
    return Figures(
        reviews=len(rows),
        closed=closed,
        open=sum(
            states[s]
            for s in (ReviewState.PENDING, ReviewState.ESCALATED, ReviewState.AWAITING_EVIDENCE)
        ),
        approved=states[ReviewState.APPROVED],
        edited=states[ReviewState.EDITED],
        rejected=states[ReviewState.REJECTED],
        expired=states[ReviewState.EXPIRED],
        escalated=len(closed_ids & escalated),
        approval_rate=_rate(states[ReviewState.APPROVED], closed),
        edit_rate=_rate(states[ReviewState.EDITED], closed),
        rejection_rate=_rate(states[ReviewState.REJECTED], closed),
        escalation_rate=_rate(len(closed_ids & escalated), closed),
        expiry_rate=_rate(states[ReviewState.EXPIRED], closed),
        median_minutes_in_queue=round(statistics.median(minutes), 2) if minutes else None,
        p90_minutes_in_queue=round(_percentile(minutes, 0.9), 2) if minutes else None,
        sla_breach_rate=_rate(breached, len(with_sla)),
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _bucket(moment: datetime, size: str) -> date:
    day = timezone.localtime(moment).date()
    return day - timedelta(days=day.weekday()) if size == "week" else day


def _series(rows, escalated, filters: MetricsFilter, now) -> list[dict[str, Any]]:
    groups: dict[date, list[dict]] = defaultdict(list)
    for row in rows:
        groups[_bucket(row["created_at"], filters.bucket)].append(row)
    series = []
    for start in sorted(groups):
        figures = _figures(groups[start], escalated, now)
        series.append({"period": start.isoformat(), **figures.__dict__})
    return series


def normalise_reason(reason: str) -> str:
    """A reason as counted among the top reasons: case, spacing and end marks folded."""
    return " ".join(reason.lower().strip(" .!").split())[:120]


def _top_reasons(decisions: list[dict]) -> list[dict[str, Any]]:
    counts: Counter = Counter()
    for d in decisions:
        if d["choice"] != Choice.APPROVE and d["reason"].strip():
            counts[(d["choice"], normalise_reason(d["reason"]))] += 1
    return [
        {"choice": choice, "reason": reason, "count": count}
        for (choice, reason), count in counts.most_common(10)
    ]


def _rubber_stamps(decisions: list[dict]) -> list[dict[str, Any]]:
    """Per reviewer: how often they approve and how fast they decide. Many decisions,
    nearly all approvals, mostly in seconds: that reviewer may be rubber-stamping."""
    by_reviewer: dict[str, list[dict]] = defaultdict(list)
    for d in decisions:
        by_reviewer[d["reviewer__username"]].append(d)
    out = []
    for reviewer, items in sorted(by_reviewer.items()):
        timed = [
            (d["decided_at"] - d["opened_at"]).total_seconds()
            for d in items
            if d["opened_at"] is not None
        ]
        approvals = sum(1 for d in items if d["choice"] == Choice.APPROVE)
        fast = sum(1 for seconds in timed if seconds < FAST_DECISION.total_seconds())
        approval_rate = _rate(approvals, len(items))
        fast_rate = _rate(fast, len(timed))
        out.append(
            {
                "reviewer": reviewer,
                "decisions": len(items),
                "approval_rate": approval_rate,
                "fast_decision_rate": fast_rate,
                "median_seconds": round(statistics.median(timed), 1) if timed else None,
                "rubber_stamp": bool(
                    len(items) >= 20 and (approval_rate or 0) >= 0.95 and (fast_rate or 0) >= 0.5
                ),
            }
        )
    return out


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
