"""The reviewers' screens: the inbox (one per kind, and all kinds) and a change page per
kind that shows the decision package and offers only the choices allowed right now.

Every button posts to `<id>/decide/` or `<id>/assign/`, which call reviews.services; the
admin never saves a review itself.
"""

import copy
import json
from datetime import datetime, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from policies.models import Tenant
from policies.selectors import important_arguments

from .. import selectors
from ..api.metrics import MetricsQuery
from ..exceptions import InvalidReviewInput, ReviewError
from ..models import (
    PROXY_BY_KIND,
    ApprovalReview,
    Choice,
    EditReview,
    EscalationReview,
    ReviewKind,
    ReviewRequest,
    ReviewState,
)
from ..selectors.metrics import compute, workload
from ..services import review_assign, review_decide
from ..validation import json_problem
from . import charts
from .base import NoRevertHistoryAdmin
from .pagination import EstimatedCountPaginator

RISK_COLOURS = {"low": "#2e7d32", "medium": "#b26a00", "high": "#c62828", "critical": "#6a1b9a"}


def risk_badge(risk: str) -> str:
    return format_html(
        '<span class="hitl-risk hitl-risk-{}" style="background:{}">{}</span>',
        risk,
        RISK_COLOURS.get(risk, "#555"),
        risk,
    )


def _compact(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


def time_left(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    if seconds <= 0:
        return format_html('<span class="hitl-overdue">overdue {}</span>', _compact(-seconds))
    return format_html('<span class="hitl-left">{}</span>', _compact(seconds))


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


class AssignForm(ActionForm):
    assignee = forms.ModelChoiceField(
        queryset=get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .order_by("username"),
        required=False,
        label="Assign to",
    )


class ReviewAdminBase(NoRevertHistoryAdmin):
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
            "<code>{}</code><br><span class='hitl-muted'>{}</span>",
            review.action_name,
            review.target_system,
        )

    @admin.display(description="summary")
    def short_summary(self, review):
        text = review.summary
        return text if len(text) <= 90 else text[:87] + "..."

    @admin.display(description="SLA", ordering="due_at")
    def sla_left(self, review):
        return time_left(review.due_at, getattr(self, "_now", timezone.now()))

    @admin.display(description="expires", ordering="expires_at")
    def expiry_left(self, review):
        return time_left(review.expires_at, getattr(self, "_now", timezone.now()))

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
        done, refused = 0, []
        for review_id in queryset.values_list("review_id", flat=True):
            try:
                review_assign(review_id=review_id, actor=request.user, assignee=assignee)
                done += 1
            except ReviewError as exc:
                refused.append(f"{review_id}: {exc.message}")
        if done:
            who = assignee.get_username() if assignee else "nobody"
            self.message_user(request, f"Assigned {done} review(s) to {who}.")
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # Nothing on a review is edited through a model form; choices are services.
        return False

    # --- the decision screen ---

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name=f"{prefix}_decide",
            ),
            path(
                "<path:object_id>/assign/",
                self.admin_site.admin_view(self.assign_view),
                name=f"{prefix}_assign",
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
            context.update(self._packet_context(request, review, context.get("submitted")))
        return super().change_view(request, object_id, form_url, context)

    def _packet_context(self, request, review, submitted):
        now = timezone.now()
        full = (
            ReviewRequest.objects.select_related("run__agent", "queue", "assignee")
            .prefetch_related("evidence", "decisions__reviewer")
            .get(pk=review.pk)
        )
        decisions = list(full.decisions.all())
        last_edit = next((d for d in reversed(decisions) if d.diff), None)
        # One guard answers what is offered and what the service accepts, with the reason.
        verdicts = selectors.choice_verdicts(review=full, user=request.user)
        choices = [v.choice for v in verdicts if v.allowed]
        not_offered = [
            (v.choice, _choice_label(v.choice, full), v.reason)
            for v in verdicts
            if not v.allowed and not v.about_review
        ]
        reasons = {reason for _, _, reason in not_offered}
        explanations = selectors.choice_consequences(full)
        history = list(
            full.history.select_related("history_user").order_by("-history_date", "-history_id")[
                :20
            ]
        )
        approvals = [d for d in decisions if d.choice == Choice.APPROVE]
        submitted = submitted or {}
        arguments = important_arguments(action_name=full.action_name, args=full.arguments)
        return {
            "review": full,
            "now": now,
            "risk_badge": risk_badge(full.risk),
            "sla_left": time_left(full.due_at, now),
            "expiry_left": time_left(full.expires_at, now),
            "arguments_table": arguments,
            "other_arguments": sorted(
                (k, v) for k, v in full.arguments.items() if k not in dict(arguments)
            ),
            "evidence": list(full.evidence.all()),
            "policy": full.policy or {},
            "decisions": decisions,
            "last_edit": last_edit,
            "diff_lines": _diff_lines(last_edit.diff) if last_edit else [],
            "trace": selectors.run_trace(full),
            "history_rows": history,
            "choices": [(c, Choice(c).label, explanations.get(c, "")) for c in choices],
            "can_decide_any": bool(choices),
            # Why a choice is not offered to this person; one line when it is one reason.
            "not_offered": not_offered,
            "why_none": reasons.pop() if len(reasons) == 1 and not choices else "",
            "approvals_so_far": len(approvals),
            "opened_at": _opening_signer(review, request.user).sign(now.isoformat()),
            "submitted_content": submitted.get("content", full.final_content or full.content),
            "submitted_reason": submitted.get("reason", ""),
            "submitted_arguments": submitted.get(
                "arguments_json",
                json.dumps(full.final_arguments or full.arguments, indent=2, sort_keys=True),
            ),
            "edit_open": bool(submitted.get("arguments_json")),
            "resume": selectors.resume_instruction(full),
            "decide_url": reverse(f"admin:reviews_{self.opts.model_name}_decide", args=[review.pk]),
            "assign_url": reverse(f"admin:reviews_{self.opts.model_name}_assign", args=[review.pk]),
            "history_url": reverse(
                f"admin:reviews_{self.opts.model_name}_history", args=[review.pk]
            ),
            "can_claim": full.is_open
            and full.assignee_id != request.user.pk
            and selectors.can_decide(user=request.user, review=full),
        }

    def decide_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        review = self.get_object(request, object_id)
        if review is None:
            raise PermissionDenied
        if not request.user.has_perm("reviews.decide_reviewrequest"):
            raise PermissionDenied
        data = request.POST
        choice = data.get("choice", "")
        submitted = {
            "reason": data.get("reason", ""),
            "content": data.get("content"),
            "arguments_json": data.get("arguments"),
        }
        try:
            arguments = None
            if choice == Choice.EDIT and review.kind != ReviewKind.EDIT:
                arguments = _parse_arguments(data.get("arguments", ""))
            content = data.get("content") if choice == Choice.EDIT else None
            if content is not None and "\r\n" not in review.content:
                # Browsers send a textarea's lines with CRLF; the agent's text used LF, and
                # an untouched text must not come back as an "edit" with other bytes.
                content = content.replace("\r\n", "\n")
            opened_at = _opened_at(data.get("opened_at"), review, request.user)
            review_decide(
                review_id=review.review_id,
                reviewer=request.user,
                choice=choice,
                reason=data.get("reason", ""),
                arguments=arguments,
                content=content,
                opened_at=opened_at,
            )
        except ReviewError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            # Show the screen again with what was typed: a refused decision loses nothing.
            get_request = copy.copy(request)
            get_request.method = "GET"
            return self.change_view(get_request, object_id, extra_context={"submitted": submitted})
        label = Choice(choice).label.lower() if choice in Choice.values else choice
        self.message_user(request, f"Recorded: {label}.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse(f"admin:reviews_{self.opts.model_name}_change", args=[review.pk])
        )

    def assign_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        review = self.get_object(request, object_id)
        if review is None:
            raise PermissionDenied
        try:
            review_assign(review_id=review.review_id, actor=request.user, assignee=request.user)
            self.message_user(request, "This review is assigned to you.", messages.SUCCESS)
        except ReviewError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(
            reverse(f"admin:reviews_{self.opts.model_name}_change", args=[review.pk])
        )


def _choice_label(choice: str, review: ReviewRequest) -> str:
    # The button's own wording, so "why not" names what the person was looking for.
    if choice == Choice.APPROVE and review.kind == ReviewKind.EDIT:
        return "Accept as is"
    return Choice(choice).label if choice in Choice.values else choice


def _opening_signer(review: ReviewRequest, user) -> signing.Signer:
    # The screen's opening time feeds "time spent" and the quality checks: the server
    # records it, signed for this review and this person, so a form cannot claim another.
    return signing.Signer(salt=f"hitl.review-opened:{review.pk}:{user.pk}")


def _opened_at(raw: str | None, review: ReviewRequest, user) -> datetime | None:
    # A missing, forged or foreign value only loses "time spent"; it never blocks a decision.
    try:
        moment = parse_datetime(_opening_signer(review, user).unsign(raw or ""))
    except (signing.BadSignature, ValueError):
        return None
    if moment is None or timezone.is_naive(moment):
        return None
    return moment


def _parse_arguments(raw: str) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidReviewInput(
            f"The arguments are not valid JSON: {exc}.",
            field_errors={"arguments": ["Not valid JSON."]},
        ) from None
    if not isinstance(value, dict):
        raise InvalidReviewInput(
            "The arguments must be a JSON object.", field_errors={"arguments": ["Not an object."]}
        )
    problem = json_problem(value)
    if problem:
        raise InvalidReviewInput(
            f"The arguments cannot be stored: {problem}.", field_errors={"arguments": [problem]}
        )
    return value


def _diff_lines(diff: str) -> list[tuple[str, str]]:
    kinds = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        kinds.append((kind, line))
    return kinds


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
        return [
            path(
                "metrics/",
                self.admin_site.admin_view(self.metrics_view),
                name="reviews_reviewrequest_metrics",
            ),
            *super().get_urls(),
        ]

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
