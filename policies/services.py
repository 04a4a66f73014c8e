"""Every write to policy data: one function per change, in a transaction, actor explicit.

The admin, the management commands and the seed call these and nothing else; each locks
the row it changes, validates with the model's ``full_clean`` (so a rule naming an unknown
field is refused here exactly as in the admin form) and records who did it in the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from hitl.db import for_update
from hitl.kernel import Actor, as_actor, stamp
from hitl.kernel.rows import insert_rows
from policies import decision_log, engine, gates
from policies.engine import PolicyDecision
from policies.models import (
    SOURCE_LOCAL,
    ActionType,
    PolicyActivation,
    PolicyEvaluation,
    PolicyVersion,
    ReviewerGrant,
    Rule,
    RuleSet,
)
from policies.selectors import draft_snapshot

# What an edit may set, in the admin forms' order: the forms edit exactly these.
ACTION_TYPE_FIELDS = (
    "name",
    "tool_type",
    "target_system",
    "reversible",
    "default_review_kind",
    "args_schema",
    "consequence_template",
    "amount_path",
    "executor",
    "fact_provider",
    "description",
)
RULE_SET_FIELDS = ("name", "tenant", "description", "unknown_action")
RULE_FIELDS = (
    "priority",
    "name",
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
_Editable = TypeVar("_Editable", ActionType, RuleSet)


def _who(actor: AbstractBaseUser | Actor | None) -> Actor:
    # None is the platform itself: the seed, a management command.
    return as_actor(actor, system="policies")


def _apply(obj: Any, fields: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValidationError(f"Unknown field(s): {', '.join(unknown)}.")
    for key, value in fields.items():
        setattr(obj, key, value)


def _edit(
    obj: _Editable, who: Actor, fields: Mapping[str, Any], allowed: Iterable[str]
) -> _Editable:
    """Lock a catalogue entry or draft, apply the fields, validate, stamp and save it."""
    locked = for_update(type(obj).objects.all()).get(pk=obj.pk)
    _apply(locked, fields, allowed)
    locked.updated_at = timezone.now()
    locked.full_clean()
    stamp(locked, who, "changed")
    locked.save()
    return locked


# --- catalogue -----------------------------------------------------------------------


def action_type_create(
    *, actor: AbstractBaseUser | Actor | None, fields: Mapping[str, Any]
) -> ActionType:
    """Add an action type to the catalogue."""
    with transaction.atomic():
        action_type = ActionType()
        _apply(action_type, fields, ACTION_TYPE_FIELDS)
        action_type.full_clean()
        stamp(action_type, _who(actor), "created")
        action_type.save()
        return action_type


def action_type_update(
    *, actor: AbstractBaseUser | Actor | None, action_type: ActionType, fields: Mapping[str, Any]
) -> ActionType:
    """Change an action type; published versions keep the catalogue they froze."""
    with transaction.atomic():
        return _edit(action_type, _who(actor), fields, ACTION_TYPE_FIELDS)


def action_type_delete(*, actor: AbstractBaseUser | Actor | None, action_type: ActionType) -> None:
    """Remove an action type that no draft rule names."""
    with transaction.atomic():
        locked = for_update(ActionType.objects.all()).get(pk=action_type.pk)
        users = [
            f"{rule.rule_set.name}/{rule.name}"
            for rule in Rule.objects.select_related("rule_set")
            if locked.name in engine.condition_action_names(rule.conditions or [])
        ]
        if users:
            raise ValidationError(
                f"{locked.name} is named by rule(s) {', '.join(users)}; change those first."
            )
        stamp(locked, _who(actor), "deleted")
        locked.delete()


# --- drafts --------------------------------------------------------------------------


def rule_set_create(
    *,
    actor: AbstractBaseUser | Actor | None,
    name: str,
    tenant: str = "",
    description: str = "",
    unknown_action: str = engine.UNKNOWN_ESCALATE,
) -> RuleSet:
    """Start a draft rule set for a tenant ("" = the default)."""
    with transaction.atomic():
        rule_set = RuleSet(
            name=name, tenant=tenant, description=description, unknown_action=unknown_action
        )
        rule_set.full_clean()
        stamp(rule_set, _who(actor), "created")
        rule_set.save()
        return rule_set


def rule_set_update(
    *, actor: AbstractBaseUser | Actor | None, rule_set: RuleSet, fields: Mapping[str, Any]
) -> RuleSet:
    """Rename a draft, change its tenant or description."""
    with transaction.atomic():
        return _edit(rule_set, _who(actor), fields, RULE_SET_FIELDS)


def rule_set_delete(*, actor: AbstractBaseUser | Actor | None, rule_set: RuleSet) -> None:
    """Delete a draft that was never published (published versions keep their rule set)."""
    who = _who(actor)
    with transaction.atomic():
        locked = for_update(RuleSet.objects.all()).get(pk=rule_set.pk)
        if PolicyVersion.objects.filter(rule_set=locked).exists():
            raise ValidationError(
                f"Rule set {locked.name} has published versions that past decisions name; it "
                "cannot be deleted."
            )
        for rule in locked.rules.all():
            stamp(rule, who, "rule set deleted")
            rule.delete()
        stamp(locked, who, "deleted")
        locked.delete()


def _touch(rule_set: RuleSet, who: Actor, reason: str) -> RuleSet:
    # Rule edits lock and stamp their rule set, so an edit and a publish never interleave.
    locked = for_update(RuleSet.objects.all()).get(pk=rule_set.pk)
    locked.updated_at = timezone.now()
    stamp(locked, who, reason)
    locked.save(update_fields=["updated_at"])
    return locked


def rule_add(
    *, actor: AbstractBaseUser | Actor | None, rule_set: RuleSet, fields: Mapping[str, Any]
) -> Rule:
    """Add a rule to a draft rule set."""
    who = _who(actor)
    with transaction.atomic():
        locked_set = _touch(rule_set, who, f"rule {fields.get('name')} added")
        rule = Rule(rule_set=locked_set)
        _apply(rule, fields, RULE_FIELDS)
        rule.full_clean()
        stamp(rule, who, "created")
        rule.save()
        return rule


def rule_update(
    *, actor: AbstractBaseUser | Actor | None, rule: Rule, fields: Mapping[str, Any]
) -> Rule:
    """Change a rule of a draft rule set."""
    who = _who(actor)
    with transaction.atomic():
        _touch(rule.rule_set, who, f"rule {rule.name} changed")
        locked = for_update(Rule.objects.all()).get(pk=rule.pk)
        _apply(locked, fields, RULE_FIELDS)
        locked.full_clean()
        stamp(locked, who, "changed")
        locked.save()
        return locked


def rule_delete(*, actor: AbstractBaseUser | Actor | None, rule: Rule) -> None:
    """Remove a rule from a draft rule set."""
    who = _who(actor)
    with transaction.atomic():
        _touch(rule.rule_set, who, f"rule {rule.name} deleted")
        locked = for_update(Rule.objects.all()).get(pk=rule.pk)
        stamp(locked, who, "deleted")
        locked.delete()


# --- publishing ----------------------------------------------------------------------


def rule_set_publish(
    *,
    actor: AbstractBaseUser | Actor | None,
    rule_set: RuleSet,
    activate: bool = True,
    note: str = "",
    check_gates: bool = False,
    danger_override_reason: str = "",
) -> PolicyVersion:
    """Freeze a draft into an immutable version (reused if the content exists) and activate it.

    With ``check_gates`` the registered gate checks run first: danger refuses the publish
    (``GateRefused``, carrying the reports) unless ``danger_override_reason`` says why to
    go on, and that reason is recorded in the rule set's history."""
    who = _who(actor)
    with transaction.atomic():
        locked = for_update(RuleSet.objects.all()).get(pk=rule_set.pk)
        snapshot = draft_snapshot(locked)
        overridden = check_gates and _gate(locked, snapshot, danger_override_reason)
        digest = engine.content_hash(snapshot)
        version = PolicyVersion.objects.filter(content_hash=digest).first()
        if version is None:
            number = (locked.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            try:
                with transaction.atomic():
                    version = PolicyVersion.objects.create(
                        rule_set=locked,
                        number=number,
                        content_hash=digest,
                        snapshot=snapshot,
                        note=note,
                        published_by=who.user,
                    )
            except IntegrityError:
                # Another rule set published the same content a moment ago: same version.
                version = PolicyVersion.objects.get(content_hash=digest)
        if overridden:
            locked.updated_at = timezone.now()
            stamp(
                locked,
                who,
                f"published {version.short_hash} despite gate danger: "
                f"{danger_override_reason.strip()}",
            )
            locked.save(update_fields=["updated_at"])
        if activate:
            version_activate(actor=who, version=version, tenant=locked.tenant)
        return version


def _gate(rule_set: RuleSet, snapshot: dict, reason: str) -> bool:
    """Run the gate checks; True when they found danger a reason overrides."""
    reports = gates.run_checks(rule_set, snapshot)
    if not gates.danger_count(reports):
        return False
    if not reason.strip():
        raise gates.GateRefused(reports)
    return True


def version_activate(
    *, actor: AbstractBaseUser | Actor | None, version: PolicyVersion, tenant: str
) -> PolicyActivation:
    """Make a version the one that decides for a tenant (also how a rollback is done)."""
    if tenant and not engine.SLUG_RE.match(tenant):
        raise ValidationError(f"Tenant {tenant!r} is not a slug.")
    who = _who(actor)
    with transaction.atomic():
        activation = for_update(PolicyActivation.objects.all()).filter(tenant=tenant).first()
        if activation is None:
            # No row to lock yet: the unique tenant decides who creates it; the loser
            # waits for the winner's row and changes it like any later activation.
            try:
                with transaction.atomic():
                    return _save_activation(PolicyActivation(tenant=tenant), version, who)
            except IntegrityError:
                activation = for_update(PolicyActivation.objects.all()).get(tenant=tenant)
        if activation.version_id == version.pk:
            return activation
        return _save_activation(activation, version, who)


def _save_activation(
    activation: PolicyActivation, version: PolicyVersion, who: Actor
) -> PolicyActivation:
    activation.version = version
    activation.activated_by = who.user
    activation.activated_at = timezone.now()
    stamp(activation, who, f"activated {version.short_hash}")
    activation.save()
    return activation


def tenant_deactivate(*, actor: AbstractBaseUser | Actor | None, tenant: str) -> None:
    """Drop a tenant's own version so the default ("") decides for it again."""
    with transaction.atomic():
        activation = for_update(PolicyActivation.objects.all()).filter(tenant=tenant).first()
        if activation is None:
            return
        stamp(activation, _who(actor), "deactivated")
        activation.delete()


# --- the evaluation log --------------------------------------------------------------


@dataclass(frozen=True)
class Evaluated:
    """One decision the server made, for the log: the policy input it decided on."""

    proposal: dict
    decision: PolicyDecision
    version_id: int | None = None  # the deciding version's, if read with the decision


def evaluation_record(
    *, proposal: dict, decision: PolicyDecision, actor_label: str
) -> PolicyEvaluation:
    """Append an evaluated proposal and its decision to the log the simulation replays."""
    return evaluations_insert(rows=[decision_log.server_row(actor_label, proposal, decision)])[0]


def evaluations_record(*, actor_label: str, items: Sequence[Evaluated]) -> list[PolicyEvaluation]:
    """Log the decisions of one request: one query for their versions, one bulk insert.
    Under HITL_DECISION_LOG="deferred" the auto-executed reads are left out here and
    handed to a worker once the request's transaction commits (see policies.decision_log)."""
    deferred = decision_log.decision_log_mode() == decision_log.DECISION_LOG_DEFERRED
    rows, later = [], []
    for item in items:
        row = decision_log.server_row(actor_label, item.proposal, item.decision)
        wait = deferred and decision_log.is_read(item.proposal, item.decision)
        if item.version_id is not None and not wait:
            row["version_id"] = item.version_id  # not looked up again
        (later if wait else rows).append(row)
    if later:
        transaction.on_commit(lambda: decision_log.defer(later))
    return evaluations_insert(rows=rows)


def evaluations_insert(*, rows: Sequence[Mapping[str, Any]]) -> list[PolicyEvaluation]:
    """Insert log rows in bulk (the deferred task calls this): rows are JSON-safe dicts of
    the log's columns, the version named by ``version_id`` or ``decision["policy_version"]``."""
    if not rows:
        return []
    hashes = {r["decision"].get("policy_version") for r in rows if not r.get("version_id")}
    hashes -= {None, ""}
    with transaction.atomic(savepoint=False):  # nothing here catches a database error
        found = PolicyVersion.objects.filter(content_hash__in=hashes) if hashes else None
        versions = dict(found.values_list("content_hash", "pk")) if found is not None else {}
        return insert_rows([decision_log.evaluation(row, versions) for row in rows])


@dataclass(frozen=True)
class LoggedDecisions:
    logged: int
    duplicates: int


def local_decisions_log(*, actor: Actor, tenant: str, entries: Any) -> LoggedDecisions:
    """Log a batch of decisions an agent made in process with the shipped engine: checked
    (PolicyInputError names the entry and field), then one bulk insert. A tool call already
    logged for this agent is skipped, so a retried batch is logged once."""
    parsed = decision_log.parse_local_entries(entries, tenant=tenant)
    with transaction.atomic():
        versions = decision_log.versions_named({entry["policy_version"] for entry in parsed})
        decision_log.check_versions(parsed, versions, tenant)
        logged = set(
            PolicyEvaluation.objects.filter(
                source=SOURCE_LOCAL,
                actor_label=actor.label,
                tool_call_id__in=[e["tool_call_id"] for e in parsed],
            ).values_list("tool_call_id", flat=True)
        )
        fresh = [e for e in parsed if e["tool_call_id"] not in logged]
        # ignore_conflicts: the same batch retried concurrently still logs each call once.
        label = actor.label
        rows = [decision_log.local_row(label, e, versions[e["policy_version"]]) for e in fresh]
        PolicyEvaluation.objects.bulk_create(rows, ignore_conflicts=True)
    return LoggedDecisions(logged=len(fresh), duplicates=len(parsed) - len(fresh))


# --- reviewer authority --------------------------------------------------------------


def _clean_names(values: Iterable[str]) -> list[str]:
    return sorted({str(v).strip() for v in values if str(v).strip()})


def _clean_tenants(values: Iterable[str]) -> list[str]:
    # "" (the default tenant) is a tenant a grant may name.
    return sorted({str(v).strip() for v in values})


def grant_create(
    *,
    actor: AbstractBaseUser | Actor | None,
    user: AbstractBaseUser | None = None,
    group: Group | None = None,
    action_names: Iterable[str] = (),
    tenants: Iterable[str] = (),
    max_amount: Decimal | None = None,
    note: str = "",
) -> ReviewerGrant:
    """Let a user or a group decide some actions (empty = all), for tenants, up to an amount."""
    who = _who(actor)
    with transaction.atomic():
        grant = ReviewerGrant(
            user=user,
            group=group,
            action_names=_clean_names(action_names),
            tenants=_clean_tenants(tenants),
            max_amount=max_amount,
            note=note,
            granted_by=who.user,
        )
        grant.full_clean()
        stamp(grant, who, "granted")
        grant.save()
        return grant


def grant_update(
    *,
    actor: AbstractBaseUser | Actor | None,
    grant: ReviewerGrant,
    action_names: Iterable[str],
    tenants: Iterable[str],
    max_amount: Decimal | None,
    note: str = "",
) -> ReviewerGrant:
    """Change what a grant covers (its holder stays the same: revoke and grant anew)."""
    with transaction.atomic():
        locked = for_update(ReviewerGrant.objects.all()).get(pk=grant.pk)
        if locked.revoked_at is not None:
            raise ValidationError("This grant was revoked; grant authority anew instead.")
        locked.action_names = _clean_names(action_names)
        locked.tenants = _clean_tenants(tenants)
        locked.max_amount = max_amount
        locked.note = note
        locked.full_clean()
        stamp(locked, _who(actor), "changed")
        locked.save()
        return locked


def grant_revoke(*, actor: AbstractBaseUser | Actor | None, grant: ReviewerGrant) -> ReviewerGrant:
    """Revoke a grant; it stays on record (who revoked it, when) but no longer counts."""
    who = _who(actor)
    # Durable: no caller holds a transaction around it, so the revocation is committed (and
    # counts for every reviewer) when it returns.
    with transaction.atomic(durable=True):
        locked = for_update(ReviewerGrant.objects.all()).get(pk=grant.pk)
        if locked.revoked_at is not None:
            return locked
        locked.revoked_at = timezone.now()
        locked.revoked_by = who.user
        stamp(locked, who, "revoked")
        locked.save(update_fields=["revoked_at", "revoked_by"])
        return locked
