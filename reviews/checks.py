"""System checks on the reviews app's data: queues whose reviews nobody would hear of."""

from django.core.checks import Warning, register
from django.db import DatabaseError
from django.db.models import F


@register()
def queues_someone_hears(app_configs, **kwargs) -> list[Warning]:
    """reviews.W001: a queue with neither an owner nor members (its reviews wait in
    silence); reviews.W002: a queue whose SLA is longer than its expiry."""
    from .models import Queue

    try:
        # Only columns every migration state has: the check also runs before `migrate`.
        orphans = list(
            Queue.objects.filter(owner__isnull=True, members__isnull=True)
            .order_by("tenant", "slug")
            .values_list("tenant", "slug")
            .distinct()
        )
        late = list(
            Queue.objects.filter(sla__gt=F("expiry"))
            .order_by("tenant", "slug")
            .values_list("tenant", "slug")
        )
    except DatabaseError:
        return []  # no database yet (or not migrated): nothing to check
    found = []
    if orphans:
        found.append(
            Warning(
                f"{len(orphans)} queue(s) have no owner and no members: {_names(orphans)}. "
                "Nobody is notified of their reviews or escalated to when the SLA passes.",
                hint="Give each an owner or members (admin: Reviews > Queues).",
                id="reviews.W001",
            )
        )
    if late:
        found.append(
            Warning(
                f"{len(late)} queue(s) have an SLA longer than their expiry: {_names(late)}. "
                "Their reviews expire before they are due.",
                hint="Shorten the SLA or lengthen the expiry (admin: Reviews > Queues).",
                id="reviews.W002",
            )
        )
    return found


def _names(rows) -> str:
    return ", ".join(f"{tenant}/{slug}" if tenant else slug for tenant, slug in rows)
