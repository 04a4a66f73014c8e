"""Publishing a rule set from the admin: a confirmation page first, then the one service call.

Publishing changes live policy for a tenant, so nothing publishes in one click: the Publish
button and the changelist action open a page that shows what the saved draft changes
against the version deciding now (rules added, removed and changed, the catalogue, the
unknown-action setting) and the gate report; its Confirm button posts the publish.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from hitl.admin import refusal_text
from hitl.internals import missing_object_redirect
from policies import engine, gates, selectors, services
from policies.models import PolicyVersion, RuleSet

# The rule fields the change list names, in the order a person reads a rule.
_RULE_FIELDS = (
    "priority",
    "enabled",
    "conditions",
    "outcome",
    "review_kind",
    "queue",
    "risk",
    "required_approvals",
    "sla_minutes",
    "audit_sample_rate",
    "description",
)


@dataclass
class DraftChanges:
    """What publishing the draft changes against the active version (None: none yet)."""

    active: PolicyVersion | None
    draft_hash: str
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    changed: list[tuple[str, list[tuple[str, str, str]]]] = field(default_factory=list)
    settings: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def same_as_active(self) -> bool:
        return self.active is not None and self.active.content_hash == self.draft_hash

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed) + len(self.settings)


def _shown(value: Any) -> str:
    if value in (None, ""):
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def _differences(old: dict, new: dict, names) -> list[tuple[str, str, str]]:
    return [
        (name.replace("_", " "), _shown(old.get(name)), _shown(new.get(name)))
        for name in names
        if old.get(name) != new.get(name)
    ]


def draft_changes(rule_set: RuleSet, snapshot: dict) -> DraftChanges:
    """Rules added, removed and changed, and settings changed, from the active version's
    snapshot for the rule set's tenant to ``snapshot``."""
    active = selectors.active_version_for(rule_set.tenant)
    changes = DraftChanges(active=active, draft_hash=engine.content_hash(snapshot))
    before = active.snapshot if active else {"rules": [], "catalogue": {}}
    old_rules = {r["name"]: r for r in before.get("rules", [])}
    new_rules = {r["name"]: r for r in snapshot["rules"]}
    changes.added = [r for name, r in new_rules.items() if name not in old_rules]
    changes.removed = [r for name, r in old_rules.items() if name not in new_rules]
    for name, rule in new_rules.items():
        if name in old_rules:
            fields = sorted(set(rule) | set(old_rules[name]), key=_field_order)
            diff = _differences(old_rules[name], rule, [f for f in fields if f != "name"])
            if diff:
                changes.changed.append((name, diff))
    unknown = engine.UNKNOWN_ESCALATE
    old_setting = {"unknown_action": before.get("unknown_action", unknown)}
    new_setting = {"unknown_action": snapshot.get("unknown_action", unknown)}
    changes.settings = _differences(old_setting, new_setting, ["unknown_action"])
    old_catalogue, new_catalogue = before.get("catalogue", {}), snapshot["catalogue"]
    for name in sorted(set(old_catalogue) | set(new_catalogue)):
        if old_catalogue.get(name) != new_catalogue.get(name):
            changes.settings.append(
                (
                    f"action type {name}",
                    _shown(old_catalogue.get(name)),
                    _shown(new_catalogue.get(name)),
                )
            )
    return changes


def _field_order(name: str) -> tuple[int, str]:
    return (_RULE_FIELDS.index(name) if name in _RULE_FIELDS else len(_RULE_FIELDS), name)


class PublishMixin:
    """The rule set admin's publish: a confirmation page (GET) and the publish (POST)."""

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("policies.publish_ruleset")

    @admin.action(
        description="Publish the selected rule set (shows what changes first)",
        permissions=["publish"],
    )
    def publish_selected(self, request, queryset):
        rule_sets = list(queryset[:2])
        if len(rule_sets) != 1:
            self.message_user(
                request,
                "Select one rule set: publishing shows what it changes before it goes live.",
                messages.WARNING,
            )
            return None
        rule_set = rule_sets[0]
        try:
            snapshot = selectors.draft_snapshot(rule_set)
            reports = gates.run_checks(rule_set, snapshot)
            if gates.danger_count(reports):
                raise gates.GateRefused(reports)
        except ValidationError as exc:
            self.message_user(
                request, f"{rule_set.name} was not published: {refusal_text(exc)}", messages.ERROR
            )
            return None
        return HttpResponseRedirect(reverse("admin:policies_ruleset_publish", args=[rule_set.pk]))

    def _publish(
        self, request: HttpRequest, rule_set: RuleSet, why: str = ""
    ) -> gates.GateRefused | None:
        try:
            version = services.rule_set_publish(
                actor=request.user, rule_set=rule_set, check_gates=True, danger_override_reason=why
            )
        except ValidationError as exc:
            self.message_user(
                request, f"{rule_set.name} was not published: {refusal_text(exc)}", messages.ERROR
            )
            return exc if isinstance(exc, gates.GateRefused) else None
        self.log_change(request, rule_set, f"Published version {version.content_hash}")
        tenant = rule_set.tenant or "the default tenant"
        self.message_user(
            request,
            f"{rule_set.name}: version {version.short_hash} (v{version.number}) is "
            f"published and now decides for {tenant}.",
            messages.SUCCESS,
        )
        return None

    def publish_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        rule_set = self.get_object(request, unquote(object_id))
        if rule_set is None:
            return missing_object_redirect(self, request, object_id)
        if not (
            self.has_publish_permission(request) and self.has_view_permission(request, rule_set)
        ):
            raise PermissionDenied
        if request.method != "POST":
            return self._confirmation(request, rule_set)
        # Danger is published only over a ticked box and a reason, both sent with the report.
        confirmed = request.POST.get("confirm_danger") == "on"
        reason = request.POST.get("danger_reason", "").strip()
        refused = self._publish(request, rule_set, reason if confirmed else "")
        if refused is None:
            return HttpResponseRedirect(reverse("admin:policies_ruleset_change", args=[object_id]))
        return self._confirmation(request, rule_set, refused.reports, confirmed, reason)

    def _confirmation(
        self, request, rule_set, reports=None, confirmed: bool = False, reason: str = ""
    ) -> HttpResponse:
        changes, problem = None, ""
        try:
            snapshot = selectors.draft_snapshot(rule_set)
            changes = draft_changes(rule_set, snapshot)
            if reports is None:
                reports = gates.run_checks(rule_set, snapshot)
        except ValidationError as exc:
            problem = f"The saved draft cannot be published: {refusal_text(exc)}"
        reports = reports or []
        context = self.admin_site.each_context(request) | {
            **{"opts": self.opts, "original": rule_set, "title": f"Publish {rule_set.name}?"},
            **{"reports": reports, "confirmed": confirmed, "reason": reason},
            **{"changes": changes, "problem": problem, "refused": request.method == "POST"},
            "danger": gates.danger_count(reports),
            "tenant": rule_set.tenant or "the default tenant",
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/policies/ruleset/publish.html", context)
