"""The reviewers' screens: the inbox (one per kind, and all kinds) and a change page per
kind that shows the decision package and offers only the choices allowed right now.

Every button posts to `<id>/decide/` or `<id>/assign/`, which call reviews.services; the
admin never saves a review itself.
"""

import copy

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from hitl.admin import ReadOnlyHistoryAdmin, each_row, own_views
from policies.models import Tenant

from .. import selectors
from ..api.metrics import MetricsQuery
from ..exceptions import ReviewError
from ..models import (
    PROXY_BY_KIND,
    ApprovalReview,
    EditReview,
    EscalationReview,
    ReviewKind,
    ReviewRequest,
)
from ..selectors.metrics import compute, workload
from ..services import review_assign, review_decide
from . import charts
from .filters import AssignmentFilter, OpenFilter, QueueFilter, SLAFilter, TenantFilter
from .pagination import EstimatedCountPaginator
from .screen import (
    choice_label,
    deadline_left,
    decision_input,
    packet_context,
    risk_badge,
    time_left,
)


class AssignForm(ActionForm):
    assignee = forms.ModelChoiceField(
        queryset=get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .order_by("username"),
        required=False,
        label="Assign to",
    )


# An after-the-fact check of an action that already ran: deciding it changes nothing.
_AUDIT_BADGE = mark_safe(
    '<span class="hitl-badge hitl-badge-audit" '
    'title="Already auto-executed: approve, or reject saying why it was wrong">audit</span>'
)


class ReviewAdminBase(ReadOnlyHistoryAdmin):
    # Nothing on a review is edited through a model form: choices post to services.
    """An inbox of one kind of review and its decision screen, scoped to the person."""

    kind: str = ""
    list_display = (
        "risk_badge",
        "state",
        "action",
        "short_summary",
        "queue",
        "assignee",
        "sla_left",
        "expiry_left",
    )
    list_display_links = ("action", "short_summary")
    list_filter = (OpenFilter, TenantFilter, QueueFilter, "risk", AssignmentFilter, SLAFilter)
    list_select_related = ("queue", "assignee")
    search_fields = ("=review_id", "summary", "action_name", "=run__run_id")
    ordering = ("due_at", "id")
    list_per_page = 50
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # The admin's changelist with rows built per column (admin.rows), same markup.
    change_list_template = "admin/reviews/inbox_change_list.html"
    action_form = AssignForm
    actions = ("claim", "assign_selected")
    inlines = ()

    class Media:
        css = {"all": ["reviews/review.css"]}

    # --- the inbox ---

    def action_checkbox(self, obj):
        # The admin renders this through a form widget's template for every row, a seventh
        # of the inbox page's time; the same markup, built directly.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            f"Select this object for an action - {obj}",
        )

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if self.kind:
            qs = qs.filter(kind=self.kind)
        return selectors.reviews_visible_to(user=request.user, queryset=qs)

    def changelist_view(self, request, extra_context=None):
        self._now = timezone.now()
        return super().changelist_view(request, extra_context)

    @admin.display(description="risk", ordering="risk")
    def risk_badge(self, review):
        return risk_badge(review.risk)

    @admin.display(description="action", ordering="action_name")
    def action(self, review):
        return format_html(
            "<code>{}</code>{}<br><span class='hitl-muted'>{}</span>",
            review.action_name,
            _AUDIT_BADGE if review.audit else "",
            review.target_system,
        )

    @admin.display(description="summary")
    def short_summary(self, review):
        text = review.summary
        return text if len(text) <= 90 else text[:87] + "..."

    @admin.display(description="SLA", ordering="due_at")
    def sla_left(self, review):
        return deadline_left(review, review.due_at, getattr(self, "_now", timezone.now()))

    @admin.display(description="expires", ordering="expires_at")
    def expiry_left(self, review):
        now = getattr(self, "_now", timezone.now())
        return time_left(review.expires_at, now) if review.is_open else "-"

    @admin.action(description="Assign to me (claim)")
    def claim(self, request, queryset):
        self._assign(request, queryset, request.user)

    @admin.action(description="Assign to the person chosen below (queue owners)")
    def assign_selected(self, request, queryset):
        field = AssignForm.base_fields["assignee"]
        try:
            assignee = field.clean(request.POST.get("assignee") or None)
        except forms.ValidationError as exc:
            self.message_user(request, f"Assign to: {' '.join(exc.messages)}", messages.ERROR)
            return
        self._assign(request, queryset, assignee)

    def _assign(self, request, queryset, assignee):
        done, refused = each_row(
            queryset.values_list("review_id", flat=True),
            lambda rid: review_assign(review_id=rid, actor=request.user, assignee=assignee),
            refused_by=ReviewError,
        )
        if done:
            who = assignee.get_username() if assignee else "nobody"
            self.message_user(request, f"Assigned {done} review(s) to {who}.")
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    # --- the decision screen ---

    def get_urls(self):
        return [
            *own_views(
                self,
                decide=("<path:object_id>/decide/", self.decide_view),
                assign=("<path:object_id>/assign/", self.assign_view),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        review = self.get_object(request, object_id)
        if review is not None and review.kind != self.kind:
            # The inbox of all kinds links here; show each kind on its own screen.
            proxy = PROXY_BY_KIND[ReviewKind(review.kind)]
            return HttpResponseRedirect(
                reverse(f"admin:reviews_{proxy._meta.model_name}_change", args=[review.pk])
            )
        context = {**(extra_context or {})}
        if review is not None:
            context.update(
                packet_context(request=request, review=review, submitted=context.get("submitted"))
            )
            context.update(self._screen_urls(review))
        return super().change_view(request, object_id, form_url, context)

    def _screen_urls(self, review) -> dict:
        name = f"admin:reviews_{self.opts.model_name}"
        return {
            "decide_url": reverse(f"{name}_decide", args=[review.pk]),
            "assign_url": reverse(f"{name}_assign", args=[review.pk]),
            "history_url": reverse(f"{name}_history", args=[review.pk]),
        }

    def _posted_review(self, request, object_id):
        # Both buttons post; a review this person cannot see is refused like a missing one.
        review = self.get_object(request, object_id)
        if review is None:
            raise PermissionDenied
        return review

    def _screen_redirect(self, object_id):
        return HttpResponseRedirect(
            reverse(f"admin:reviews_{self.opts.model_name}_change", args=[object_id])
        )

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def decide_view(self, request, object_id):
        if request.method != "POST":
            # The address of a refused decision's page, opened again: the review's screen,
            # not an empty 405.
            return self._screen_redirect(object_id)
        review = self._posted_review(request, object_id)
        if not request.user.has_perm("reviews.decide_reviewrequest"):
            raise PermissionDenied
        data = request.POST
        choice = data.get("choice", "")
        submitted = {
            "choice": choice,
            "reason": data.get("reason", ""),
            "content": data.get("content"),
            "arguments_json": data.get("arguments"),
        }
        try:
            review_decide(
                review_id=review.review_id,
                reviewer=request.user,
                **decision_input(review, data, request.user),
            )
        except ReviewError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            submitted["field_errors"] = exc.field_errors
            # Show the screen again with what was typed: a refused decision loses nothing.
            get_request = copy.copy(request)
            get_request.method = "GET"
            return self.change_view(get_request, object_id, extra_context={"submitted": submitted})
        label = choice_label(choice, review).lower()
        self.message_user(request, f"Recorded: {label}.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse(f"admin:reviews_{self.opts.model_name}_change", args=[review.pk])
        )

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def assign_view(self, request, object_id):
        if request.method != "POST":
            return self._screen_redirect(object_id)
        review = self._posted_review(request, object_id)
        try:
            review_assign(review_id=review.review_id, actor=request.user, assignee=request.user)
            self.message_user(request, "This review is assigned to you.", messages.SUCCESS)
        except ReviewError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(
            reverse(f"admin:reviews_{self.opts.model_name}_change", args=[review.pk])
        )


@admin.register(ApprovalReview)
class ApprovalReviewAdmin(ReviewAdminBase):
    kind = ReviewKind.APPROVAL


@admin.register(EditReview)
class EditReviewAdmin(ReviewAdminBase):
    kind = ReviewKind.EDIT


@admin.register(EscalationReview)
class EscalationReviewAdmin(ReviewAdminBase):
    kind = ReviewKind.ESCALATION


@admin.register(ReviewRequest)
class InboxAdmin(ReviewAdminBase):
    """Every kind in one inbox; each row opens the screen for its kind. It also serves
    the leads' metrics dashboard."""

    kind = ""

    def get_urls(self):
        return [*own_views(self, metrics=("metrics/", self.metrics_view)), *super().get_urls()]

    def metrics_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = MetricsQuery(data=request.GET)
        errors = {} if query.is_valid() else query.errors
        if errors:
            query = MetricsQuery(data={})
            query.is_valid()
        metrics = compute(user=request.user, filters=query.to_filter())
        series = metrics.series
        tenant = None if metrics.filters.tenant == "*" else metrics.filters.tenant
        queues = selectors.queues_for(user=request.user)
        tenants = list(Tenant.names(selectors.tenants_of(user=request.user)).items())
        if request.user.is_superuser:
            tenants.append(("*", "Every tenant"))
        if tenant is not None:
            queues = queues.filter(tenant=tenant)
        context = {
            **self.admin_site.each_context(request),
            "title": "Review metrics",
            "opts": self.opts,
            "metrics": metrics,
            "overall": metrics.overall,
            "errors": errors,
            "query": query.validated_data,
            "queues": queues,
            "tenants": tenants,
            "tenant": "*" if tenant is None else tenant,
            "workload": workload(user=request.user, tenant=tenant),
            "outcomes_chart": charts.stacked_bars(
                series,
                [
                    ("approved", "approved", "#2e7d32"),
                    ("edited", "edited", "#1565c0"),
                    ("rejected", "rejected", "#c62828"),
                    ("expired", "expired", "#757575"),
                    ("open", "still open", "#ffb300"),
                ],
            ),
            "time_chart": charts.line(
                series, "median_minutes_in_queue", "median minutes in queue", "#6a1b9a"
            ),
            "csv_url": reverse("api:metrics") + "?" + request.GET.urlencode() + "&format=csv",
            "overdue_url": reverse("admin:reviews_reviewrequest_changelist") + "?sla=breached",
        }
        return TemplateResponse(request, "admin/reviews/metrics.html", context)

    list_display = ("risk_badge", "kind", *ReviewAdminBase.list_display[1:])
    list_filter = (
        OpenFilter,
        TenantFilter,
        QueueFilter,
        "kind",
        "risk",
        AssignmentFilter,
        SLAFilter,
    )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        review = self.get_object(request, object_id)
        if review is None:
            return super(ReviewAdminBase, self).change_view(request, object_id, form_url)
        proxy = PROXY_BY_KIND[ReviewKind(review.kind)]
        return HttpResponseRedirect(
            reverse(f"admin:reviews_{proxy._meta.model_name}_change", args=[review.pk])
        )
