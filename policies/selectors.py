"""Reads shared by the admin, the commands and the reviews app: evaluate, explain, simulate."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from jsonschema import Draft202012Validator

from hitl.kernel.rows import Read
from policies import consequences, engine
from policies.engine import Check, PolicyDecision, Proposal
from policies.exceptions import PolicyInputError
from policies.models import (
    ActionType,
    PolicyActivation,
    PolicyEvaluation,
    PolicyVersion,
    ReviewerGrant,
    RuleSet,
)

DEFAULT_SIMULATION_LIMIT = 200
MAX_SIMULATION_PROPOSALS = 5000


def default_queue() -> str:
    """The queue a review goes to when no rule names one (settings.POLICY_DEFAULT_QUEUE)."""
    return getattr(settings, "POLICY_DEFAULT_QUEUE", "operations")


# --- the catalogue -------------------------------------------------------------------


# One proposal asks for its action type half a dozen times (schema, consequence, kind,
# amount, authority); the catalogue changes rarely. Entries live a few seconds per process
# and a save in this process clears them at once.
_CATALOGUE_TTL = 5.0
_catalogue_cache: dict[str, tuple[float, ActionType | None]] = {}


def action_type_for(name: str) -> ActionType | None:
    """The catalogue entry for an action name, or None when it is unknown."""
    if not isinstance(name, str) or not name:
        return None
    now = time.monotonic()
    hit = _catalogue_cache.get(name)
    if hit is not None and hit[0] > now:
        return hit[1]
    action_type = ActionType.objects.filter(name=name).first()
    if len(_catalogue_cache) > 1000:
        _catalogue_cache.clear()
    _catalogue_cache[name] = (now + _CATALOGUE_TTL, action_type)
    return action_type


def forget_catalogue(**kwargs) -> None:
    """Drop cached action types (connected to ActionType saves and deletes)."""
    _catalogue_cache.clear()


def amount_for(*, action_name: str, args: Mapping[str, Any]) -> Decimal | None:
    """The money amount in the arguments (at the action type's amount_path), if any."""
    action_type = action_type_for(action_name)
    if action_type is None or not action_type.amount_path:
        return None
    return engine.to_decimal(engine.read_path(args, action_type.amount_path))


def important_arguments(*, action_name: str, args: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The arguments a reviewer sees first: required ones, then the other declared ones
    that are present, in the schema's order. A missing required argument shows as None."""
    action_type = action_type_for(action_name)
    schema = action_type.args_schema if action_type else {}
    properties = list((schema.get("properties") or {}).keys()) if isinstance(schema, dict) else []
    required = [r for r in (schema.get("required") or [])] if isinstance(schema, dict) else []
    if not properties and not required:
        return sorted(args.items())
    ordered_required = [p for p in properties if p in required] + [
        r for r in required if r not in properties
    ]
    optional = [p for p in properties if p not in required and p in args]
    return [(name, args.get(name)) for name in ordered_required + optional]


def render_consequence(*, action_name: str, args: Mapping[str, Any]) -> str:
    """The one sentence saying what happens if this action is approved."""
    action_type = action_type_for(action_name)
    if action_type is None:
        return (
            f"Run {action_name}, an action type missing from the catalogue, with "
            f"{_arguments_text(sorted(args.items()))}."
        )
    if action_type.consequence_template:
        return consequences.render(action_type.consequence_template, args)
    shown = important_arguments(action_name=action_name, args=args)
    target = f" on {action_type.target_system}" if action_type.target_system else ""
    return f"Run {action_name}{target} with {_arguments_text(shown)}."


def _arguments_text(pairs: list[tuple[str, Any]]) -> str:
    if not pairs:
        return "no arguments"
    return ", ".join(f"{k}={consequences._text(v)}" for k, v in pairs)


# --- versions ------------------------------------------------------------------------


def routed_queues(version: PolicyVersion | None) -> set[str]:
    """The queue names a version can send a review to: its review rules' queues and the
    default one (no rule matched, or a rule that names none)."""
    rules = (version.snapshot.get("rules") or []) if version is not None else []
    named = {r.get("queue") for r in rules if r.get("outcome") == "human_review"}
    return {q for q in named if q} | {default_queue()}


_ACTIVATIONS = Read(
    PolicyActivation,
    '"t0"."tenant" IN (%s, \'\')',
    related=("version", "version__rule_set"),
    defer=("version.snapshot",),
)


def active_version_for(tenant: str) -> PolicyVersion | None:
    """The version deciding for a tenant: its own, else the default (""), else None."""
    # At most two rows, picked by tenant; read on every proposal, so composed once.
    rows = {a.tenant: a.version for a in _ACTIVATIONS.all(tenant)}
    return rows.get(tenant) or rows.get("")


def find_version(reference: str) -> PolicyVersion:
    """A version by id, full hash or a hash prefix of 8+ characters; PolicyInputError if none."""
    ref = str(reference).strip().lower()
    queryset = PolicyVersion.objects.select_related("rule_set").defer("snapshot")
    if ref.isdigit() and len(ref) < 8:
        found = queryset.filter(pk=int(ref)).first()
    elif len(ref) >= 8 and all(c in "0123456789abcdef" for c in ref):
        matches = list(queryset.filter(content_hash__startswith=ref)[:2])
        if len(matches) > 1:
            raise PolicyInputError(
                {"version": [f"{reference!r} matches several versions; give more of the hash"]}
            )
        found = matches[0] if matches else None
    else:
        found = None
    if found is None:
        raise PolicyInputError(
            {
                "version": [
                    f"no policy version {reference!r} (give an id, or 8+ characters of the hash)"
                ]
            }
        )
    return found


def compiled_version(version: PolicyVersion | None) -> engine.CompiledPolicy:
    """The compiled policy for a version (cached by hash); no version = no rules."""
    if version is None:
        return engine.compile_policy({"rules": [], "catalogue": {}}, default_queue=default_queue())
    return engine.compiled_for(
        version.content_hash,
        lambda: PolicyVersion.objects.values_list("snapshot", flat=True).get(pk=version.pk),
        default_queue=default_queue(),
    )


def catalogue_entries() -> dict[str, dict]:
    """The catalogue as a published version freezes it."""
    rows = ActionType.objects.values_list("name", *engine.CATALOGUE_KEYS)
    return {name: dict(zip(engine.CATALOGUE_KEYS, entry, strict=True)) for name, *entry in rows}


def draft_snapshot(rule_set: RuleSet) -> dict:
    """The snapshot publishing this draft now would freeze; raises ValidationError."""
    # Whole rows: validating a rule keeps only what the snapshot holds.
    rules = list(rule_set.rules.filter(enabled=True).values())
    if not rules:
        raise ValidationError(f"Rule set {rule_set.name} has no enabled rules to publish.")
    catalogue = catalogue_entries()
    try:
        snapshot = engine.build_snapshot(rules, catalogue, unknown_action=rule_set.unknown_action)
    except engine.RuleError as exc:
        raise ValidationError(exc.messages) from exc
    unknown = sorted(
        {n for r in snapshot["rules"] for n in engine.condition_action_names(r["conditions"])}
        - set(catalogue)
    )
    if unknown:
        raise ValidationError(f"Rules name unknown action type(s): {', '.join(unknown)}.")
    return snapshot


def compiled_draft(rule_set: RuleSet) -> engine.CompiledPolicy:
    """The draft compiled as publishing it now would; raises ValidationError if invalid."""
    snapshot = draft_snapshot(rule_set)
    digest = engine.content_hash(snapshot)
    return engine.compiled_for(digest, lambda: snapshot, default_queue=default_queue())


# --- evaluating ----------------------------------------------------------------------


def parse_proposal(proposal: Any) -> Proposal:
    """The proposal as the engine sees it; PolicyInputError on a malformed one (no DB)."""
    try:
        return engine.parse_proposal(proposal)
    except engine.ProposalError as exc:
        raise PolicyInputError(exc.errors) from exc


def schema_check(parsed: Proposal) -> Check:
    """Validate the arguments against the action type's JSON Schema; PolicyInputError if not."""
    action_type = action_type_for(parsed.action_name)
    if action_type is None:
        return Check(
            "schema_valid", False, f"no schema: {parsed.action_name} is not in the action catalogue"
        )
    validator = Draft202012Validator(action_type.args_schema or {})
    errors = sorted(validator.iter_errors(parsed.args), key=lambda e: list(e.absolute_path))
    if errors:
        problems: dict[str, list[str]] = {}
        for error in errors[:10]:
            where = ".".join(["action.args", *(str(p) for p in error.absolute_path)])
            problems.setdefault(where, []).append(error.message)
        raise PolicyInputError(problems)
    return Check("schema_valid", True, f"arguments match the {action_type.name} schema")


def evaluate_proposal(*, proposal: dict, version: str | None = None) -> PolicyDecision:
    """Validate a proposal (API shape) and decide it with the tenant's active version
    (or the version given by id or hash). Raises PolicyInputError; writes nothing."""
    return evaluate_proposal_versioned(proposal=proposal, version=version)[0]


def evaluate_proposal_versioned(
    *, proposal: dict, version: str | None = None
) -> tuple[PolicyDecision, int | None]:
    """`evaluate_proposal`, and the id of the version that decided (None: no version), read
    with it: the decision log names its version without looking the hash up again."""
    parsed = parse_proposal(proposal)
    checked = schema_check(parsed)
    pinned = (
        find_version(version) if version not in (None, "") else active_version_for(parsed.tenant)
    )
    decision = engine.evaluate(compiled_version(pinned), parsed)
    return replace(decision, checks=(checked, *decision.checks)), (
        pinned.pk if pinned is not None else None
    )


# --- the evaluation log and the simulation -------------------------------------------


def recent_evaluations(*, limit: int = DEFAULT_SIMULATION_LIMIT) -> QuerySet[PolicyEvaluation]:
    """The last ``limit`` evaluated proposals, newest first."""
    limit = max(1, min(int(limit), MAX_SIMULATION_PROPOSALS))
    return PolicyEvaluation.objects.order_by("-created_at", "-id")[:limit]


def parse_jsonl(text: str) -> tuple[list[tuple[str, Any]], list[tuple[int, str]]]:
    """Proposals from JSON Lines text, labelled "line N"; bad lines come back as errors."""
    proposals: list[tuple[str, Any]] = []
    errors: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(proposals) >= MAX_SIMULATION_PROPOSALS:
            errors.append(
                (number, f"more than {MAX_SIMULATION_PROPOSALS} proposals; the rest were not read")
            )
            break
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append((number, f"not JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(data, dict):
            errors.append((number, "must be a JSON object (one proposal per line)"))
            continue
        proposals.append((f"line {number}", data))
    return proposals, errors


@dataclass(frozen=True)
class SimulatedCase:
    """One proposal whose decision would change if the draft were published."""

    label: str
    action_name: str
    tenant: str
    before: PolicyDecision
    after: PolicyDecision


@dataclass
class SimulationResult:
    """How a draft would decide the given proposals, next to the active versions."""

    draft_hash: str
    total: int = 0
    before: Counter = field(default_factory=Counter)
    after: Counter = field(default_factory=Counter)
    changed: list[SimulatedCase] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    skipped_other_tenants: int = 0

    @property
    def unchanged(self) -> int:
        return self.total - len(self.changed)

    def outcome_rows(self) -> list[tuple[str, int, int, int]]:
        """(outcome, before, after, after - before) for every outcome."""
        return [
            (o, self.before[o], self.after[o], self.after[o] - self.before[o])
            for o in engine.OUTCOMES
        ]


def _shape(decision: PolicyDecision) -> tuple:
    return (
        decision.outcome,
        decision.review_kind,
        decision.queue,
        decision.risk,
        decision.required_approvals,
        decision.sla_minutes,
    )


def simulate(*, draft: RuleSet, proposals: Iterable[Any]) -> SimulationResult:
    """Decide each proposal with the active version and with the draft; count the outcomes
    and list the cases that change. Items are proposal dicts or (label, proposal) pairs.
    Proposals of tenants the draft would not decide for are skipped and counted."""
    compiled = compiled_draft(draft)
    result = SimulationResult(draft_hash=compiled.version or "")
    own_tenants = set(PolicyActivation.objects.exclude(tenant="").values_list("tenant", flat=True))
    before_cache: dict[str, engine.CompiledPolicy] = {}
    for index, item in enumerate(proposals, start=1):
        label, payload = item if isinstance(item, tuple) else (f"#{index}", item)
        try:
            parsed = parse_proposal(payload)
            checked = schema_check(parsed)
        except ValidationError as exc:
            result.errors.append((label, _one_line(exc)))
            continue
        in_scope = parsed.tenant == draft.tenant or (
            draft.tenant == "" and parsed.tenant not in own_tenants
        )
        if not in_scope:
            result.skipped_other_tenants += 1
            continue
        if parsed.tenant not in before_cache:
            before_cache[parsed.tenant] = compiled_version(active_version_for(parsed.tenant))
        before = engine.evaluate(before_cache[parsed.tenant], parsed)
        after = engine.evaluate(compiled, parsed)
        before = replace(before, checks=(checked, *before.checks))
        after = replace(after, checks=(checked, *after.checks))
        result.total += 1
        result.before[before.outcome] += 1
        result.after[after.outcome] += 1
        if _shape(before) != _shape(after):
            result.changed.append(
                SimulatedCase(
                    label=label,
                    action_name=parsed.action_name,
                    tenant=parsed.tenant,
                    before=before,
                    after=after,
                )
            )
    return result


def _one_line(exc: ValidationError) -> str:
    if isinstance(exc, PolicyInputError):
        return exc.one_line()
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {m}" for k, ms in exc.message_dict.items() for m in ms)
    return "; ".join(exc.messages)


# --- reviewer authority --------------------------------------------------------------


def grants_for(user: AbstractBaseUser) -> QuerySet[ReviewerGrant]:
    """The unrevoked grants a user holds, directly or through a group."""
    return (
        ReviewerGrant.objects.filter(revoked_at__isnull=True)
        .filter(Q(user=user) | Q(group__in=user.groups.all()))
        .select_related("user", "group")
        .order_by("id")
    )


def publication_status(rule_set: RuleSet) -> str:
    """One sentence: is the saved draft published, and does it decide for its tenant?"""
    try:
        digest = engine.content_hash(draft_snapshot(rule_set))
    except ValidationError as exc:
        return f"The saved draft cannot be published yet: {_one_line(exc)}"
    version = PolicyVersion.objects.filter(content_hash=digest).select_related("rule_set").first()
    if version is None:
        latest = rule_set.versions.order_by("-number").first()
        since = f" since v{latest.number} ({latest.short_hash})" if latest else ""
        return f"Unpublished changes{since}: publish to freeze draft {digest[:12]}."
    active = active_version_for(rule_set.tenant)
    where = rule_set.tenant or "the default tenant"
    state = "and decides" if active and active.pk == version.pk else "but does not decide"
    return f"The saved draft is published as {version} {state} for {where}."
