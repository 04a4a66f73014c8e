"""The rule set admin's suggestions page, its one-click draft, and the draft's gate report.

What the suggestions say comes from the providers registered in ``policies.insights``;
the draft is written through ``policies.services`` like every other rule set edit.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from hitl.admin import own_views, refusal_text
from hitl.internals import missing_object_redirect
from hitl.kernel import Actor
from policies import engine, gates, insights, selectors, services
from policies.models import RuleSet

# What a rule that ran past a person keeps of its review settings: nothing.
_REVIEW_ONLY = {"review_kind": "", "queue": "", "required_approvals": 1, "sla_minutes": None}


class SuggestionsMixin:
    """Adds the suggestions page, the one-click draft and the gate report to a rule set admin."""

    def suggestions_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        rule_set = self._viewable(request, object_id)
        if not isinstance(rule_set, RuleSet):
            return rule_set
        context = {
            "title": f"Suggestions for {rule_set.name}",
            "reports": insights.collect(rule_set),
            "may_draft": self.has_add_permission(request),
        }
        return self._render(request, rule_set, "suggestions.html", context)

    def suggestion_draft_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        rule_set = self._viewable(request, object_id)
        if not isinstance(rule_set, RuleSet):
            return rule_set
        if not self.has_add_permission(request):
            raise PermissionDenied
        rule_name = request.POST.get("rule", "")
        try:
            draft = auto_execute_draft(actor=request.user, rule_set=rule_set, rule_name=rule_name)
        except ValidationError as exc:
            self.message_user(request, f"No draft was made: {refusal_text(exc)}", messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:policies_ruleset_suggestions", args=[rule_set.pk])
            )
        self.log_addition(request, draft, f"Drafted from a suggestion: {rule_name} auto-executes")
        return HttpResponseRedirect(reverse("admin:policies_ruleset_gate", args=[draft.pk]))

    def gate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        rule_set = self._viewable(request, object_id)
        if not isinstance(rule_set, RuleSet):
            return rule_set
        context = {"title": f"Gate report for {rule_set.name}", "reports": [], "problem": ""}
        try:
            context["reports"] = gates.run_checks(rule_set, selectors.draft_snapshot(rule_set))
        except ValidationError as exc:
            context["problem"] = f"The draft cannot be checked: {refusal_text(exc)}"
        context["may_publish"] = self.has_publish_permission(request)
        return self._render(request, rule_set, "gate.html", context)

    def _viewable(self, request: HttpRequest, object_id: str) -> RuleSet | HttpResponse:
        rule_set = self.get_object(request, unquote(object_id))
        if rule_set is None:
            return missing_object_redirect(self, request, object_id)
        if not self.has_view_permission(request, rule_set):
            raise PermissionDenied
        return rule_set

    def _render(self, request: HttpRequest, rule_set: RuleSet, name: str, extra: dict):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": rule_set,
            **extra,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, f"admin/policies/ruleset/{name}", context)

    def get_urls(self):
        return [
            *own_views(
                self,
                suggestions=("<path:object_id>/suggestions/", self.suggestions_view),
                suggest_draft=("<path:object_id>/suggestions/draft/", self.suggestion_draft_view),
                gate=("<path:object_id>/gate/", self.gate_view),
            ),
            *super().get_urls(),
        ]


def auto_execute_draft(
    *, actor: AbstractBaseUser | Actor | None, rule_set: RuleSet, rule_name: str
) -> RuleSet:
    """A new draft for the rule set's tenant: its rules, with ``rule_name`` auto-executing."""
    rules = list(rule_set.rules.order_by("priority", "name"))
    if not any(rule.name == rule_name for rule in rules):
        raise ValidationError(f"{rule_set.name} has no rule {rule_name!r}.")
    with transaction.atomic():
        draft = services.rule_set_create(
            actor=actor,
            name=_free_name(f"{rule_set.name}-{rule_name}-auto"),
            tenant=rule_set.tenant,
            description=f"Drafted from {rule_set.name}: rule {rule_name} auto-executes, as "
            "reviewers approved what it sent them nearly always.",
            unknown_action=rule_set.unknown_action,
        )
        for rule in rules:
            fields = {name: getattr(rule, name) for name in services.RULE_FIELDS}
            if rule.name == rule_name:
                fields |= {"outcome": engine.AUTO_EXECUTE, **_REVIEW_ONLY}
            services.rule_add(actor=actor, rule_set=draft, fields=fields)
    return draft


def _free_name(base: str) -> str:
    limit = RuleSet._meta.get_field("name").max_length
    name, n = base[:limit], 1
    while RuleSet.objects.filter(name=name).exists():
        n += 1
        name = f"{base[: limit - len(str(n)) - 1]}-{n}"
    return name
