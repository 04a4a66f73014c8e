"""The inbox's filters: open or not, tenant, queue, assignment, SLA."""

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from policies.models import Tenant

from .. import selectors
from ..models import (
    ReviewState,
)


class AssignmentFilter(admin.SimpleListFilter):
    title = "assignment"
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return [("me", "Assigned to me"), ("none", "Unassigned")]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(assignee=request.user)
        if self.value() == "none":
            return queryset.filter(assignee__isnull=True)
        return queryset


class OpenFilter(admin.SimpleListFilter):
    """Open reviews by default: an inbox shows what still needs someone."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), *ReviewState.choices, ("all", "All")]

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "open"
        if value == "open":
            return queryset.filter(state__in=(ReviewState.PENDING, ReviewState.ESCALATED))
        if value == "all":
            return queryset
        if value in ReviewState.values:
            return queryset.filter(state=value)
        return queryset


class QueueFilter(admin.SimpleListFilter):
    """Only the queues this person works in are offered."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        # str() names the tenant too: two tenants may both have an "Operations".
        return [(str(q.pk), str(q)) for q in selectors.queues_for(user=request.user)]

    def queryset(self, request, queryset):
        # isdigit() alone lets '²' through to int(); the changelist refuses a queue that
        # lookups() did not offer before this runs, and this stays safe without it.
        value = self.value()
        if value and value.isascii() and value.isdigit():
            return queryset.filter(queue_id=int(value))
        return queryset


class TenantFilter(admin.SimpleListFilter):
    """The tenants of the queues this person works in (the home's counts link here)."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        names = Tenant.names(selectors.tenants_of(user=request.user))
        # "" is a real tenant (the default one), so it gets a value of its own.
        return [(slug or "-", name) for slug, name in names.items()]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(tenant="" if value == "-" else value)


class SLAFilter(admin.SimpleListFilter):
    title = "SLA"
    parameter_name = "sla"

    def lookups(self, request, model_admin):
        return [("breached", "Past the SLA"), ("soon", "Due within an hour")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "breached":
            return queryset.filter(due_at__lt=now)
        if self.value() == "soon":
            return queryset.filter(due_at__gte=now, due_at__lt=now + timedelta(hours=1))
        return queryset
