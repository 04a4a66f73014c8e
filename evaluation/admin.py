"""Curation for ML engineers: candidates with their checks, accept or discard, datasets."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from hitl.admin import (
    NoRevertHistoryAdmin,
    ReadOnlyHistoryAdmin,
    ServiceSaveMixin,
    ValidatedModelAdmin,
    each_row,
    own_views,
)
from policies.models import Tenant
from reviews.models import ReviewRequest

from . import selectors
from .models import (
    CaseStatus,
    Dataset,
    DatasetVersion,
    EvalCase,
    RegressionResult,
    RegressionRun,
    TenantEvaluationSetting,
)
from .regressions import compare_runs
from .services import (
    EvaluationError,
    case_accept,
    case_discard,
    dataset_publish,
    dataset_save,
    tenant_evaluation_setting_save,
)

CHECK_NAMES = [
    "had_context",
    "real_reason",
    "non_trivial_edit",
    "not_contradicted",
    "not_duplicate",
]


class FailedCheckFilter(admin.SimpleListFilter):
    title = "check result"
    parameter_name = "check"

    def lookups(self, request, model_admin):
        return [("passed", "All passed"), *((name, f"Failed: {name}") for name in CHECK_NAMES)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "passed":
            return queryset.filter(failed_checks=[])
        if value in CHECK_NAMES:
            return queryset.filter(failed_checks__icontains=f'"{value}"')
        return queryset


class NoteForm(ActionForm):
    note = forms.CharField(required=False, label="Note", max_length=2000)


@admin.register(EvalCase)
class EvalCaseAdmin(ReadOnlyHistoryAdmin):
    list_display = (
        "created_at",
        "status",
        "action_name",
        "label",
        "short_reason",
        "check_badges",
        "pii",
    )
    list_filter = ("status", "label", "action_name", FailedCheckFilter)
    search_fields = ("review_id", "run_id", "reason")
    ordering = ("-created_at",)
    action_form = NoteForm
    actions = ("accept", "discard")
    readonly_fields = (
        "status",
        "label",
        "action_name",
        "target_system",
        "reason",
        "check_table",
        "pii_found",
        "input",
        "proposal",
        "correction",
        "provenance",
        "curated_by",
        "curated_at",
        "curation_note",
    )
    fields = readonly_fields

    @admin.display(description="reason")
    def short_reason(self, case):
        return case.reason[:80]

    @admin.display(description="checks")
    def check_badges(self, case):
        return format_html_join(
            " ",
            '<span title="{}" style="color:{}">{}</span>',
            (
                (c["reason"], "#2e7d32" if c["passed"] else "#c62828", "✔" if c["passed"] else "✘")
                for c in case.checks
            ),
        )

    @admin.display(description="PII redacted")
    def pii(self, case):
        return ", ".join(f"{k} {v}" for k, v in sorted(case.pii_found.items())) or "-"

    @admin.display(description="checks")
    def check_table(self, case):
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((c["name"], "pass" if c["passed"] else "FAIL", c["reason"]) for c in case.checks),
            ),
        )

    def has_curate_permission(self, request):
        return request.user.has_perm("evaluation.change_evalcase")

    @admin.action(
        description="Accept selected cases (only those that passed every check)",
        permissions=["curate"],
    )
    def accept(self, request, queryset):
        self._curate(request, queryset, case_accept)

    @admin.action(description="Discard selected cases", permissions=["curate"])
    def discard(self, request, queryset):
        self._curate(request, queryset, case_discard)

    def _curate(self, request, queryset, service):
        note = (request.POST.get("note") or "").strip()[:2000]
        done, refused = each_row(
            queryset.values_list("pk", flat=True),
            lambda pk: service(case_id=pk, actor=request.user, note=note),
            refused_by=EvaluationError,
        )
        self.message_user(request, f"{done} case(s) updated.")
        for message in refused[:20]:
            self.message_user(request, message, messages.WARNING)

    def get_urls(self):
        return [
            *own_views(self, disagreement=("disagreement/", self.disagreement_view)),
            *super().get_urls(),
        ]

    def disagreement_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        # One tenant at a time: rates that mix customers describe none of them.
        tenants = Tenant.choices()
        tenant = request.GET.get("tenant", "")
        if tenant not in {slug for slug, _ in tenants}:
            tenant = ""
        context = {
            **self.admin_site.each_context(request),
            "title": "Where reviewers disagree with the agent",
            "opts": self.opts,
            # Over every decided review: the captured cases sample the approvals.
            "tables": selectors.disagreement(ReviewRequest.objects.filter(tenant=tenant)),
            "candidates": EvalCase.objects.filter(
                tenant=tenant, status=CaseStatus.CANDIDATE
            ).count(),
            "tenants": tenants,
            "tenant": tenant,
        }
        return TemplateResponse(request, "admin/evaluation/disagreement.html", context)


class DatasetVersionInline(admin.TabularInline):
    model = DatasetVersion
    fields = ("number", "case_count", "published_at", "publisher", "note", "export")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset", "published_by")

    @admin.display(description="published by")
    def publisher(self, version):
        # The name, not a link: the admin would link the user's page, which a curator may
        # not open (a 403).
        user = version.published_by
        return (user.get_full_name() or user.get_username()) if user else "-"

    @admin.display(description="export")
    def export(self, version):
        url = reverse("evaluation_api:dataset-export", args=[version.dataset.slug])
        return format_html(
            '<a href="{}?version={}">JSONL</a> · <a href="{}?version={}&records=chat">chat</a>',
            url,
            version.number,
            url,
            version.number,
        )


class EvaluationServiceMixin(ServiceSaveMixin):
    """Saves through the evaluation services; what they refuse is shown on the form."""

    refusals = (ValidationError, EvaluationError)


@admin.register(Dataset)
class DatasetAdmin(EvaluationServiceMixin, NoRevertHistoryAdmin):
    list_display = ("slug", "name", "tenant", "all_tenants", "action_names", "created_at")
    list_filter = ("tenant",)
    prepopulated_fields = {"slug": ("name",)}
    inlines = (DatasetVersionInline,)
    actions = ("publish",)

    def has_delete_permission(self, request, obj=None):
        # Its published versions are what evaluations cite; a dataset is never deleted.
        return False

    def get_readonly_fields(self, request, obj=None):
        # Mixing tenants' data is a platform admin's call, never a curator's.
        return () if request.user.is_superuser else ("all_tenants",)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "tenant":
            return forms.ChoiceField(
                choices=Tenant.choices(),
                required=False,
                help_text="Whose cases this dataset holds.",
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        dataset_save(actor=request.user, dataset=obj)

    @admin.action(
        description="Publish a new frozen version of the accepted cases", permissions=["change"]
    )
    def publish(self, request, queryset):
        for dataset in queryset:
            try:
                version = dataset_publish(dataset=dataset, actor=request.user)
                self.message_user(request, f"Published {version} with {version.case_count} cases.")
            except EvaluationError as exc:
                self.message_user(request, str(exc), messages.WARNING)


@admin.register(TenantEvaluationSetting)
class TenantEvaluationSettingAdmin(EvaluationServiceMixin, NoRevertHistoryAdmin):
    list_display = ("tenant", "allow_evaluation")

    def has_delete_permission(self, request, obj=None):
        # A missing row means "allowed": deleting an opt-out would turn capture back on.
        return False

    def save_model(self, request, obj, form, change):
        tenant_evaluation_setting_save(actor=request.user, setting=obj)


COMPARED = {
    "fixed": "Fixed",
    "broken": "Broken",
    "still_failing": "Still failing",
    "new": "Not in the earlier run",
}


class RegressionResultInline(admin.TabularInline):
    model = RegressionResult
    fields = ("case_id", "label", "action", "passed", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RegressionRun)
class RegressionRunAdmin(ValidatedModelAdmin):
    """Regression runs, read-only (run_regression makes them); two compare side by side."""

    list_display = ("__str__", "agent_version", "started_at", "passed", "failed")
    list_filter = ("version__dataset",)
    list_select_related = ("version__dataset",)
    readonly_fields = (
        "version", "agent", "agent_version", "started_at", "finished_at", "passed", "failed"
    )  # fmt: skip
    inlines = [RegressionResultInline]
    actions = ["compare"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Compare two runs of the same dataset", permissions=["view"])
    def compare(self, request, queryset):
        runs = list(queryset.select_related("version").order_by("started_at", "id"))
        try:
            if len(runs) != 2:
                raise ValueError("Select exactly two runs to compare.")
            changes = compare_runs(*runs)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Compare regression runs",
            "before": runs[0],
            "after": runs[1],
            "changes": [(COMPARED[name], rows) for name, rows in changes.items()],
        }
        return TemplateResponse(request, "admin/evaluation/regression_compare.html", context)
