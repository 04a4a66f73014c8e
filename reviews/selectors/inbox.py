"""A reviewer's home: open reviews by tenant, kind and urgency."""

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q
from django.utils import timezone

from policies.models import Tenant

from ..models import (
    ReviewState,
)
from .access import reviews_visible_to


def inbox_counts(*, user: AbstractBaseUser, now=None) -> list[dict]:
    """A reviewer's home: open reviews they can work, by kind and by urgency, one row per
    tenant (figures never add up customers), with the tenant's name."""
    now = now or timezone.now()
    soon = now + timedelta(hours=1)
    open_qs = reviews_visible_to(user=user).filter(
        state__in=(ReviewState.PENDING, ReviewState.ESCALATED)
    )
    rows = list(
        open_qs.values("tenant")
        .annotate(
            total=Count("pk"),
            mine=Count("pk", filter=Q(assignee=user)),
            unassigned=Count("pk", filter=Q(assignee__isnull=True)),
            overdue=Count("pk", filter=Q(due_at__lt=now)),
            due_soon=Count("pk", filter=Q(due_at__gte=now, due_at__lt=soon)),
            approval=Count("pk", filter=Q(kind="approval")),
            edit=Count("pk", filter=Q(kind="edit")),
            escalation=Count("pk", filter=Q(kind="escalation")),
        )
        .order_by("tenant")
    )
    names = Tenant.names(r["tenant"] for r in rows)
    for row in rows:
        row["tenant_name"] = names[row["tenant"]]
    return rows
