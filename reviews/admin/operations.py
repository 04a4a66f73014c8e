"""Admin for the platform's plumbing: queues, runs, agents and keys, executions, webhooks."""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from hitl.admin import ReadOnlyHistoryAdmin, ServiceDeleteMixin, ValidatedModelAdmin
from hitl.kernel import Actor
from policies.models import PolicyActivation, PolicyVersion, Tenant
from policies.selectors import active_version_for, routed_queues

from .. import selectors
from ..forms import QueueForm, duration_in_words
from ..models import (
    Agent,
    AgentKey,
    AgentRun,
    Execution,
    NotificationPreference,
    Queue,
    WebhookDelivery,
)
from ..services import agent_key_issue, agent_key_revoke, queue_save, tenant_create
from ..services.agents import agent_update
from ..services.notifications import notification_preference_set
from ..services.queues import queue_delete
from ..services.tenants import tenant_problems, tenant_rename
from .base import ReviewServiceAdmin


@admin.register(Queue)
class QueueAdmin(ServiceDeleteMixin, ReviewServiceAdmin):
    form = QueueForm
    # ServiceDeleteMixin's own (ValidationError only) would hide what queue_save refuses.
    refusals = ReviewServiceAdmin.refusals
    list_display = (
        "name",
        "slug",
        "tenant",
        "owner",
        "sla_words",
        "remind_before_words",
        "remind_every_words",
        "expiry_words",
        "expiry_behaviour",
        "fallback",
        "notify_owner_on_breach",
        "chat",
    )
    list_select_related = ("owner", "fallback")
    fieldsets = (
        (None, {"fields": ("name", "slug", "tenant", "owner", "members", "escalation_owner")}),
        (
            "Time",
            {
                "fields": ("sla", "remind_before", "remind_every", "expiry"),
                "description": "In words: '4 hours', '2 days 3 hours', '90 minutes'.",
            },
        ),
        ("When nobody decides in time", {"fields": ("expiry_behaviour", "fallback")}),
        (
            "Notifications",
            {"fields": ("notify_owner_on_breach", "chat_webhook_url", "chat_webhook_remove")},
        ),
    )
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("members",)
    search_fields = ("name", "slug")

    def get_queryset(self, request):
        return selectors.queues_for(user=request.user).select_related("owner")

    @admin.display(description="SLA", ordering="sla")
    def sla_words(self, obj):
        return duration_in_words(obj.sla)

    @admin.display(description="Remind before", ordering="remind_before")
    def remind_before_words(self, obj):
        return duration_in_words(obj.remind_before, empty="never")

    @admin.display(description="Remind every", ordering="remind_every")
    def remind_every_words(self, obj):
        return duration_in_words(obj.remind_every, empty="once")

    @admin.display(description="Expiry", ordering="expiry")
    def expiry_words(self, obj):
        return duration_in_words(obj.expiry)

    @admin.display(description="Chat")
    def chat(self, obj):
        return obj.chat_webhook_hint or "—"

    def has_change_permission(self, request, obj=None):
        # Leads change the queues they own; members only look.
        allowed = super().has_change_permission(request, obj)
        if obj is None or request.user.is_superuser:
            return allowed
        return allowed and obj.owner_id == request.user.pk

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            # Moving a queue to another tenant would hand its reviews to that tenant.
            return ("tenant",) if request.user.is_superuser else ("owner", "tenant")
        return () if request.user.is_superuser else ("owner",)

    def get_changeform_initial_data(self, request):
        return {
            **super().get_changeform_initial_data(request),
            "tenant": request.GET.get("tenant", ""),
        }

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "tenant":
            choices = Tenant.choices()
            if not request.user.is_superuser:
                # A lead adds queues to the tenants they already own a queue in.
                owned = set(
                    Queue.objects.filter(owner=request.user).values_list("tenant", flat=True)
                )
                choices = [(slug, name) for slug, name in choices if slug in owned]
            return forms.ChoiceField(
                choices=choices, required=False, help_text="Set once; tenants never share."
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "fallback":
            kwargs["queryset"] = selectors.queues_for(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def delete_model(self, request, obj):
        queue_delete(actor=request.user, queue=obj)

    def save_model(self, request, obj, form, change):
        if not change and not request.user.is_superuser:
            obj.owner = request.user  # a lead's new queue is theirs, never an orphan
        queue_save(actor=request.user, queue=obj, members=form.cleaned_data.get("members"))

    def save_related(self, request, form, formsets, change):
        # Not form.save_m2m(): queue_save wrote the members, in the save's history row.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(ReviewServiceAdmin):
    """How each person hears of new reviews and breaches: everyone sets their own, an admin
    anyone's. Without a row a person gets an email per event."""

    list_display = ("user", "mode", "updated_at")
    list_select_related = ("user",)
    list_filter = ("mode",)
    search_fields = ("user__username", "user__email")

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        return rows if request.user.is_superuser else rows.filter(user=request.user)

    def _own(self, request, obj) -> bool:
        return (
            request.user.is_active
            and request.user.is_staff
            and (request.user.is_superuser or obj is None or obj.user_id == request.user.pk)
        )

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self._own(request, obj)

    has_change_permission = has_view_permission

    def has_add_permission(self, request):
        # No query here: every admin page asks. Adding when a row exists updates that row.
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_fields(self, request, obj=None):
        return ("user", "mode") if request.user.is_superuser and obj is None else ("mode",)

    def changelist_view(self, request, extra_context=None):
        if request.user.is_superuser:
            return super().changelist_view(request, extra_context)
        # A person has one row: the list is their own page.
        mine = NotificationPreference.objects.filter(user=request.user).first()
        if mine is None:
            return HttpResponseRedirect(reverse("admin:reviews_notificationpreference_add"))
        return HttpResponseRedirect(
            reverse("admin:reviews_notificationpreference_change", args=[mine.pk])
        )

    def save_model(self, request, obj, form, change):
        user = obj.user if (change or request.user.is_superuser) else request.user
        saved = notification_preference_set(actor=request.user, user=user, mode=obj.mode)
        obj.pk, obj.user = saved.pk, user


class TenantCreateForm(forms.ModelForm):
    """A tenant and the first queue its reviews land in, with who works it."""

    queue_name = forms.CharField(initial="Operations", max_length=200)
    queue_slug = forms.SlugField(
        initial="operations",
        max_length=100,
        help_text="Policies route reviews by queue name; the default queue is 'operations'.",
    )
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_active=True))
    members = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True), required=False
    )
    policy_version = forms.ModelChoiceField(
        queryset=PolicyVersion.objects.select_related("rule_set"),
        required=False,
        help_text="Leave empty and the default policy decides for this tenant.",
    )

    class Meta:
        model = Tenant
        fields = ("slug", "name")

    def clean(self):
        data = super().clean()
        problems = tenant_problems(
            slug=data.get("slug", ""),
            name=data.get("name", ""),
            owner=data.get("owner"),
            queue_slug=data.get("queue_slug", ""),
            queue_name=data.get("queue_name", ""),
        )
        for field, errors in problems.items():
            field = field if field in self.fields else None
            for error in errors:
                if field is None or field not in self.errors:
                    self.add_error(field, error)
        return data


@admin.register(Tenant)
class TenantAdmin(ReviewServiceAdmin):
    """Platform admins create tenants; everything a tenant owns is listed on its page."""

    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")
    readonly_fields = ("slug", "created_at", "queues", "agents", "policy")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    has_add_permission = has_view_permission

    has_change_permission = has_view_permission  # the name only: the slug never changes

    def has_delete_permission(self, request, obj=None):
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = TenantCreateForm
            kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return (
                "slug",
                "name",
                "queue_name",
                "queue_slug",
                "owner",
                "members",
                "policy_version",
            )
        return ("slug", "name", "created_at", "queues", "agents", "policy")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            tenant_rename(actor=request.user, tenant=obj, name=data["name"])
            return
        created = tenant_create(
            actor=request.user,
            slug=data["slug"],
            name=data["name"],
            owner=data["owner"],
            members=data["members"],
            queue_slug=data["queue_slug"],
            queue_name=data["queue_name"],
            policy_version=data["policy_version"],
        )
        obj.pk = created.pk

    @admin.display(description="Queues")
    def queues(self, obj):
        rows = Queue.objects.filter(tenant=obj.slug).select_related("owner").order_by("slug")
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a> (owner {})',
            (
                (reverse("admin:reviews_queue_change", args=[q.pk]), q.slug, q.owner or "none")
                for q in rows
            ),
        )
        add = reverse("admin:reviews_queue_add") + f"?tenant={obj.slug}"
        return format_html('{} <a href="{}">Add a queue</a>', links or "none.", add)

    @admin.display(description="Agents")
    def agents(self, obj):
        names = Agent.objects.filter(tenant=obj.slug).values_list("name", flat=True)
        return ", ".join(names) or "none (manage.py create_agent NAME --tenant SLUG)"

    @admin.display(description="Policy")
    def policy(self, obj):
        activation = PolicyActivation.objects.filter(tenant=obj.slug).select_related(
            "version__rule_set"
        )
        own = activation.first()
        if own is None:
            which = "The default policy decides for this tenant."
        else:
            version = own.version
            which = f"{version.rule_set.name} v{version.number} ({version.short_hash})."
        # A proposal routed to a queue this tenant lacks is refused (no_queue_for_tenant):
        # say so here, before an agent finds out.
        routed = sorted(routed_queues(active_version_for(obj.slug)))
        have = set(Queue.objects.filter(tenant=obj.slug).values_list("slug", flat=True))
        missing = [q for q in routed if q not in have]
        if not missing:
            return f"{which} It routes to {', '.join(routed)}: all present."
        return format_html(
            '{} It routes to {}. <strong class="hitl-overdue">Missing here: {}</strong>; '
            "proposals routed there are refused until they exist.",
            which,
            ", ".join(routed),
            ", ".join(missing),
        )


@admin.register(AgentRun)
class AgentRunAdmin(ReadOnlyHistoryAdmin):
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
class AgentAdmin(ReviewServiceAdmin):
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

    def save_model(self, request, obj, form, change):
        agent_update(
            actor=Actor.of_user(request.user),
            agent=obj,
            tenant=obj.tenant,
            callback_url=obj.callback_url,
            is_active=obj.is_active,
        )

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
class ExecutionAdmin(ReadOnlyHistoryAdmin):
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
        "blocked_checks",
    )

    def get_queryset(self, request):
        visible = selectors.reviews_visible_to(user=request.user).values("pk")
        return super().get_queryset(request).filter(review__in=visible)


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
    search_fields = ("agent__name", "review__review_id", "delivery_id")
    readonly_fields = (
        "delivery_id",
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
