"""Admin screens for the policy: catalogue, drafts, versions, grants, the log, simulation.

Every save, delete, publish and revoke here calls ``policies.services``; the admin only
collects input and shows results.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Exists, Max, OuterRef
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from hitl.admin import (
    NoRevertHistoryAdmin,
    ReadOnlyAdmin,
    ServiceDeleteMixin,
    ServiceSaveMixin,
    own_views,
    refusal_text,
)
from hitl.internals import adopt_identity, missing_object_redirect
from policies import admin_publish, admin_suggestions, selectors, services
from policies.forms import ActionTypeForm, ReviewerGrantForm, RuleForm, SimulationForm
from policies.models import (
    ActionType,
    PolicyActivation,
    PolicyEvaluation,
    PolicyVersion,
    ReviewerGrant,
    Rule,
    RuleSet,
)


class ServiceHistoryAdmin(ServiceSaveMixin, ServiceDeleteMixin, NoRevertHistoryAdmin):
    """Every save and delete through ``policies.services``; history is read, never reverted,
    and kept readable for deleted rows (every policy screen shows every row)."""

    history_of_deleted = True


@admin.register(ActionType)
class ActionTypeAdmin(ServiceHistoryAdmin):
    form = ActionTypeForm
    list_display = [
        "name",
        "tool_type",
        "target_system",
        "reversible",
        "default_review_kind",
        "amount_path",
    ]
    list_filter = ["tool_type", "reversible", "default_review_kind"]
    search_fields = ["name", "target_system", "description"]

    def save_model(self, request, obj, form, change):
        fields = {f: form.cleaned_data[f] for f in form.Meta.fields if f in form.cleaned_data}
        if change:
            saved = services.action_type_update(actor=request.user, action_type=obj, fields=fields)
            self.message_user(
                request,
                "Published policy versions keep the catalogue they froze: publish the "
                "rule set again for this change to reach decisions.",
                messages.WARNING,
            )
        else:
            saved = services.action_type_create(actor=request.user, fields=fields)
        adopt_identity(obj, saved)

    def delete_model(self, request, obj):
        services.action_type_delete(actor=request.user, action_type=obj)


class RuleInline(admin.StackedInline):
    # A rule is a short card, its settings on a few lines, not a thirteen-column table row
    # (2,570 px wide): the rule set page fits a laptop screen.
    model = Rule
    form = RuleForm
    extra = 0
    ordering = ["priority", "name"]
    show_change_link = False
    fields = [
        ("priority", "name", "enabled"),
        "conditions",
        ("outcome", "review_kind", "queue", "risk"),
        ("required_approvals", "sla_minutes", "audit_sample_rate"),
        "description",
    ]


@admin.register(RuleSet)
class RuleSetAdmin(
    admin_suggestions.SuggestionsMixin, admin_publish.PublishMixin, ServiceHistoryAdmin
):
    list_display = [
        "name",
        "tenant_label",
        "unknown_action",
        "rule_count",
        "latest_version",
        "updated_at",
    ]
    search_fields = ["name", "tenant", "description"]
    fields = ["name", "tenant", "description", "unknown_action", "publication_status"]
    readonly_fields = ["publication_status"]
    inlines = [RuleInline]
    actions = ["publish_selected"]
    change_form_template = "admin/policies/ruleset/change_form.html"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_rule_count=Count("rules", distinct=True), _latest=Max("versions__number"))
        )

    @admin.display(description="tenant", ordering="tenant")
    def tenant_label(self, obj: RuleSet) -> str:
        return obj.tenant or "(default)"

    @admin.display(description="rules", ordering="_rule_count")
    def rule_count(self, obj: RuleSet) -> int:
        return obj._rule_count

    @admin.display(description="latest version", ordering="_latest")
    def latest_version(self, obj: RuleSet) -> str:
        return f"v{obj._latest}" if obj._latest else "never published"

    @admin.display(description="publication")
    def publication_status(self, obj: RuleSet) -> str:
        if obj is None or obj.pk is None:
            return "Not saved yet."
        return selectors.publication_status(obj)

    # --- writes through services -----------------------------------------------------

    def save_model(self, request, obj, form, change):
        fields = {
            f: form.cleaned_data[f]
            for f in ("name", "tenant", "description", "unknown_action")
            if f in form.cleaned_data
        }
        if change:
            saved = services.rule_set_update(actor=request.user, rule_set=obj, fields=fields)
        else:
            saved = services.rule_set_create(actor=request.user, **fields)
        adopt_identity(obj, saved)

    def save_formset(self, request, form, formset, change):
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            rule = inline_form.instance
            if inline_form in formset.deleted_forms:
                if rule.pk:
                    services.rule_delete(actor=request.user, rule=rule)
                    formset.deleted_objects.append(rule)
                continue
            if not inline_form.has_changed():
                continue
            fields = {f: inline_form.cleaned_data[f] for f in RuleForm.Meta.fields}
            if rule.pk:
                saved = services.rule_update(actor=request.user, rule=rule, fields=fields)
                formset.changed_objects.append((saved, inline_form.changed_data))
            else:
                saved = services.rule_add(actor=request.user, rule_set=form.instance, fields=fields)
                formset.new_objects.append(saved)
            adopt_identity(rule, saved)

    def delete_model(self, request, obj):
        services.rule_set_delete(actor=request.user, rule_set=obj)

    # --- simulation ------------------------------------------------------------------

    def simulate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        rule_set = self.get_object(request, unquote(object_id))
        if rule_set is None:
            return missing_object_redirect(self, request, object_id)
        if not self.has_view_permission(request, rule_set):
            raise PermissionDenied
        form = SimulationForm(request.POST or None)
        result, problem, line_errors = None, None, []
        if request.method == "POST" and form.is_valid():
            if form.cleaned_data["source"] == "recent":
                proposals = [
                    (f"evaluation #{e.pk}", e.proposal)
                    for e in selectors.recent_evaluations(limit=form.cleaned_data["limit"])
                ]
            else:
                proposals, bad_lines = selectors.parse_jsonl(form.cleaned_data["jsonl"])
                line_errors = [(f"line {n}", message) for n, message in bad_lines]
            try:
                result = selectors.simulate(draft=rule_set, proposals=proposals)
            except ValidationError as exc:
                problem = f"The draft cannot be simulated: {refusal_text(exc)}"
            else:
                result.errors = sorted(line_errors + result.errors, key=_label_order)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": rule_set,
            "title": f"Simulate draft {rule_set.name}",
            "subtitle": None,
            "form": form,
            "result": result,
            "problem": problem,
            "active": selectors.active_version_for(rule_set.tenant),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/policies/ruleset/simulate.html", context)

    def get_urls(self):
        return [
            *own_views(
                self,
                simulate=("<path:object_id>/simulate/", self.simulate_view),
                publish=("<path:object_id>/publish/", self.publish_view),
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["has_publish_permission"] = self.has_publish_permission(request)
        return super().render_change_form(request, context, add, change, form_url, obj)


def _label_order(item: tuple[str, str]) -> tuple[int, str]:
    label = item[0]
    number = label.rsplit(" ", 1)[-1].lstrip("#")
    return (int(number) if number.isdigit() else 0, label)


def _rules_table(rules: list[dict]) -> str:
    return format_html(
        "<table><thead><tr><th>priority</th><th>name</th><th>conditions</th><th>outcome</th>"
        "<th>kind</th><th>queue</th><th>risk</th><th>approvals</th><th>SLA</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    r["priority"],
                    r["name"],
                    json.dumps(r["conditions"]),
                    r["outcome"],
                    r["review_kind"] or "-",
                    r["queue"] or "-",
                    r["risk"],
                    r["required_approvals"],
                    r["sla_minutes"] or "-",
                )
                for r in rules
            ),
        ),
    )


@admin.register(PolicyVersion)
class PolicyVersionAdmin(ReadOnlyAdmin):
    list_display = ["short_hash", "rule_set", "number", "is_active", "published_at", "published_by"]
    list_filter = ["rule_set"]
    list_select_related = ["rule_set", "published_by"]
    search_fields = ["content_hash", "rule_set__name", "note"]
    fields = [
        "content_hash",
        "rule_set",
        "number",
        "note",
        "published_by",
        "published_at",
        "active_for",
        "rules",
        "catalogue",
    ]
    readonly_fields = fields
    actions = ["activate"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_active=Exists(PolicyActivation.objects.filter(version=OuterRef("pk"))))
        )

    @admin.display(description="hash", ordering="content_hash")
    def short_hash(self, obj: PolicyVersion) -> str:
        return obj.short_hash

    @admin.display(description="active", boolean=True, ordering="_active")
    def is_active(self, obj: PolicyVersion) -> bool:
        return obj._active

    @admin.display(description="active for")
    def active_for(self, obj: PolicyVersion) -> str:
        tenants = PolicyActivation.objects.filter(version=obj).values_list("tenant", flat=True)
        return ", ".join(t or "(default)" for t in tenants) or "no tenant"

    @admin.display(description="rules (frozen)")
    def rules(self, obj: PolicyVersion) -> str:
        return _rules_table(obj.snapshot.get("rules", []))

    @admin.display(description="catalogue (frozen)")
    def catalogue(self, obj: PolicyVersion) -> str:
        return format_html_join(
            "",
            "<div><code>{}</code>: {}</div>",
            (
                (name, json.dumps(entry, sort_keys=True))
                for name, entry in obj.snapshot.get("catalogue", {}).items()
            ),
        )

    def has_activate_permission(self, request):
        return request.user.has_perm("policies.publish_ruleset")

    @admin.action(
        description="Activate for its rule set's tenant (roll forward or back)",
        permissions=["activate"],
    )
    def activate(self, request, queryset):
        versions = list(queryset.select_related("rule_set")[:2])
        if len(versions) != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        version = versions[0]
        tenant = version.rule_set.tenant
        services.version_activate(actor=request.user, version=version, tenant=tenant)
        self.message_user(
            request,
            f"Version {version.short_hash} now decides for {tenant or 'the default tenant'}.",
            messages.SUCCESS,
        )


@admin.register(PolicyActivation)
class PolicyActivationAdmin(ServiceHistoryAdmin):
    list_display = ["tenant_label", "version", "activated_by", "activated_at"]
    list_select_related = ["version", "version__rule_set", "activated_by"]
    fields = ["tenant", "version"]

    @admin.display(description="tenant", ordering="tenant")
    def tenant_label(self, obj: PolicyActivation) -> str:
        return obj.tenant or "(default)"

    def get_readonly_fields(self, request, obj=None):
        return ["tenant"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        saved = services.version_activate(
            actor=request.user,
            version=form.cleaned_data["version"],
            tenant=obj.tenant if change else form.cleaned_data["tenant"],
        )
        adopt_identity(obj, saved)

    def delete_model(self, request, obj):
        services.tenant_deactivate(actor=request.user, tenant=obj.tenant)


@admin.register(ReviewerGrant)
class ReviewerGrantAdmin(ServiceHistoryAdmin):
    form = ReviewerGrantForm
    list_display = ["id", "principal", "scope", "granted_by", "created_at", "is_active"]
    list_select_related = ["user", "group", "granted_by"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__username", "group__name", "note"]
    actions = ["revoke_selected"]

    def get_readonly_fields(self, request, obj=None):
        # The holder of a grant never changes; revoke it and grant the other principal.
        return ["user", "group", "revoked_at", "revoked_by"] if obj is not None else []

    @admin.display(description="holder")
    def principal(self, obj: ReviewerGrant) -> str:
        return obj.principal_label

    @admin.display(description="scope")
    def scope(self, obj: ReviewerGrant) -> str:
        return obj.scope_text()

    @admin.display(description="active", boolean=True)
    def is_active(self, obj: ReviewerGrant) -> bool:
        return obj.is_active

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        scope = {name: data[name] for name in ("action_names", "tenants", "max_amount", "note")}
        if change:
            saved = services.grant_update(actor=request.user, grant=obj, **scope)
        else:
            saved = services.grant_create(
                actor=request.user, user=data.get("user"), group=data.get("group"), **scope
            )
        adopt_identity(obj, saved)

    @admin.action(description="Revoke the selected grants", permissions=["change"])
    def revoke_selected(self, request, queryset):
        count = 0
        for grant in queryset:
            services.grant_revoke(actor=request.user, grant=grant)
            count += 1
        self.message_user(request, f"Revoked {count} grant(s).", messages.SUCCESS)


@admin.register(PolicyEvaluation)
class PolicyEvaluationAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "action_name",
        "tenant",
        "outcome",
        "rule",
        "version_hash",
        "actor_label",
        "source",
    ]
    # Local decisions are logged by agents in batches: which agent, which call, and when the
    # agent decided (created_at is when the platform logged it).
    list_filter = ["outcome", "source", "action_name"]
    list_select_related = ["version"]
    search_fields = ["action_name", "tenant", "actor_label", "rule", "tool_call_id"]
    fields = [
        "created_at",
        "source",
        "decided_at",
        "tool_call_id",
        "actor_label",
        "action_name",
        "tenant",
        "outcome",
        "rule",
        "version",
        "proposal_json",
        "decision_json",
    ]
    readonly_fields = fields
    date_hierarchy = "created_at"

    @admin.display(description="version")
    def version_hash(self, obj: PolicyEvaluation) -> str:
        return obj.version.short_hash if obj.version else "-"

    @admin.display(description="proposal")
    def proposal_json(self, obj: PolicyEvaluation) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.proposal, indent=2))

    @admin.display(description="decision")
    def decision_json(self, obj: PolicyEvaluation) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.decision, indent=2))
