"""Admin for the platform's plumbing: queues, runs, agents and keys, executions, webhooks."""

from django.contrib import admin

from hitl.admin import ValidatedModelAdmin

from .. import selectors
from ..actors import Actor
from ..models import (
    Agent,
    AgentKey,
    AgentRun,
    Execution,
    Queue,
    WebhookDelivery,
)
from ..services import agent_key_issue, agent_key_revoke, queue_save
from .base import NoRevertHistoryAdmin


@admin.register(Queue)
class QueueAdmin(NoRevertHistoryAdmin):
    list_display = (
        "name",
        "slug",
        "tenant",
        "owner",
        "sla",
        "remind_before",
        "remind_every",
        "expiry",
        "expiry_behaviour",
        "fallback",
    )
    list_select_related = ("owner", "fallback")
    fieldsets = (
        (None, {"fields": ("name", "slug", "tenant", "owner", "members", "escalation_owner")}),
        ("Time", {"fields": ("sla", "remind_before", "remind_every", "expiry")}),
        ("When nobody decides in time", {"fields": ("expiry_behaviour", "fallback")}),
    )
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("members",)
    search_fields = ("name", "slug")

    def get_queryset(self, request):
        return selectors.queues_for(user=request.user).select_related("owner")

    def has_change_permission(self, request, obj=None):
        # Leads change the queues they own; members only look.
        allowed = super().has_change_permission(request, obj)
        if obj is None or request.user.is_superuser:
            return allowed
        return allowed and obj.owner_id == request.user.pk

    def get_readonly_fields(self, request, obj=None):
        return () if request.user.is_superuser else ("owner",)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "fallback":
            kwargs["queryset"] = selectors.queues_for(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        queue_save(actor=request.user, queue=obj)


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

    def get_fields(self, request, obj=None):
        fields = self.readonly_fields
        if obj is not None and not selectors.sees_whole_run(user=request.user, run=obj):
            # Part of this run was reviewed in queues this person does not work in.
            fields = tuple(f for f in fields if f not in ("checkpoint", "pending_tool_call"))
        return fields


class AgentKeyInline(admin.TabularInline):
    model = AgentKey
    fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Agent)
class AgentAdmin(NoRevertHistoryAdmin):
    """Agents are registered with `manage.py create_agent`; here keys are rotated."""

    list_display = ("name", "tenant", "callback_url", "is_active", "created_at")
    list_filter = ("is_active", "tenant")
    search_fields = ("name",)
    fields = ("name", "tenant", "callback_url", "is_active", "created_at")
    readonly_fields = ("name", "created_at")
    inlines = (AgentKeyInline,)
    actions = ("issue_key", "revoke_keys")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Issue a new API key (shown once)", permissions=["change"])
    def issue_key(self, request, queryset):
        for agent in queryset:
            key = agent_key_issue(actor=Actor.of_user(request.user), agent=agent)
            self.message_user(
                request, f"New key for {agent.name} (copy it now, it is not shown again): {key}"
            )

    @admin.action(description="Revoke all API keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        keys = AgentKey.objects.filter(agent__in=queryset, revoked_at__isnull=True)
        for key in keys:
            agent_key_revoke(actor=Actor.of_user(request.user), prefix=key.prefix)
        self.message_user(request, f"Revoked {len(keys)} key(s).")


@admin.register(Execution)
class ExecutionAdmin(NoRevertHistoryAdmin):
    list_display = ("review", "state", "mode", "claimed_by", "claimed_at", "finished_at")
    list_filter = ("state", "mode")
    list_select_related = ("review",)
    search_fields = ("review__review_id", "idempotency_key")
    readonly_fields = (
        "review",
        "state",
        "mode",
        "idempotency_key",
        "claimed_by",
        "claimed_at",
        "finished_at",
        "arguments",
        "content",
        "result",
        "error",
        "blocked_reasons",
    )

    def get_queryset(self, request):
        visible = selectors.reviews_visible_to(user=request.user).values("pk")
        return super().get_queryset(request).filter(review__in=visible)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ValidatedModelAdmin):
    list_display = (
        "created_at",
        "agent",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    )
    list_filter = ("status", "event")
    list_select_related = ("agent",)
    search_fields = ("agent__name", "review__review_id")
    readonly_fields = (
        "agent",
        "review",
        "event",
        "url",
        "payload",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
