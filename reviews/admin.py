"""Admin screens of the reviews app. Read-only views of the workflow: decisions go through
reviews.services (the reviewer screens with their buttons come with the inbox)."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from simple_history.admin import SimpleHistoryAdmin

from . import selectors
from .models import (
    AgentRun,
    ApprovalReview,
    Decision,
    EditReview,
    EscalationReview,
    Evidence,
    Queue,
    ReviewKind,
)


class NoRevertHistoryAdmin(SimpleHistoryAdmin):
    """History is for reading: a revert would move state behind the state machine's back."""

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("Reverting from history is disabled; the audit is immutable.")
        return super().history_form_view(request, object_id, version_id, extra_context)


class EvidenceInline(admin.TabularInline):
    model = Evidence
    fields = ("evidence_id", "title", "url", "excerpt", "fresh_until", "supplied_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class DecisionInline(admin.TabularInline):
    model = Decision
    fields = ("decided_at", "reviewer", "choice", "reason", "state_before", "state_after", "diff")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ReviewAdminBase(NoRevertHistoryAdmin):
    """A read-only view of one kind of review, scoped to the reviewer's queues."""

    kind: str = ""
    list_display = (
        "review_id",
        "state",
        "risk",
        "action_name",
        "target_system",
        "summary",
        "queue",
        "assignee",
        "due_at",
        "expires_at",
    )
    list_filter = ("state", "risk", "queue")
    list_select_related = ("queue", "assignee")
    search_fields = ("review_id", "summary", "action_name", "run__run_id")
    ordering = ("due_at", "id")
    inlines = (EvidenceInline, DecisionInline)
    fieldsets = (
        (None, {"fields": ("review_id", "state", "kind", "queue", "assignee", "tenant")}),
        (
            "The proposal",
            {
                "fields": (
                    "action_name",
                    "target_system",
                    "summary",
                    "consequence",
                    "arguments",
                    "content",
                    "affected_resources",
                )
            },
        ),
        (
            "The case for it",
            {"fields": ("confidence", "uncertainty", "options_considered", "risk", "policy")},
        ),
        (
            "Workflow",
            {
                "fields": (
                    "run",
                    "choices",
                    "required_approvals",
                    "due_at",
                    "expires_at",
                    "versions",
                    "proposed_by",
                    "created_at",
                    "decided_at",
                    "final_arguments",
                    "final_content",
                )
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def get_queryset(self, request):
        qs = super().get_queryset(request).filter(kind=self.kind)
        return selectors.reviews_visible_to(user=request.user, queryset=qs)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApprovalReview)
class ApprovalReviewAdmin(ReviewAdminBase):
    kind = ReviewKind.APPROVAL


@admin.register(EditReview)
class EditReviewAdmin(ReviewAdminBase):
    kind = ReviewKind.EDIT


@admin.register(EscalationReview)
class EscalationReviewAdmin(ReviewAdminBase):
    kind = ReviewKind.ESCALATION


@admin.register(Queue)
class QueueAdmin(NoRevertHistoryAdmin):
    list_display = ("name", "slug", "tenant", "owner", "sla", "expiry", "expiry_behaviour")
    list_select_related = ("owner",)
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("members",)
    search_fields = ("name", "slug")

    def get_queryset(self, request):
        return selectors.queues_for(user=request.user).select_related("owner")


@admin.register(AgentRun)
class AgentRunAdmin(NoRevertHistoryAdmin):
    list_display = ("run_id", "agent", "tenant", "status", "updated_at")
    list_select_related = ("agent",)
    list_filter = ("status",)
    search_fields = ("run_id", "thread_id", "agent__name")
    readonly_fields = (
        "run_id",
        "thread_id",
        "agent",
        "tenant",
        "agent_version",
        "model_version",
        "prompt_version",
        "checkpoint",
        "pending_tool_call",
        "status",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        visible = selectors.reviews_visible_to(user=request.user).values("run_id")
        return super().get_queryset(request).filter(pk__in=visible)
