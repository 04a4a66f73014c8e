"""Before anything executes, it is re-validated: what held when the review was decided
must still hold when its action is about to run.

One function per check family (expiry, authority, policy, evidence freshness, resource
versions); `stale_checks` runs them all and `fresh_state` asks the action type's fact
provider for the trusted current facts and versions to check against.

A fact provider is called in one place, `call_fact_provider`, both when a proposal arrives
(`read_trusted_facts`: its facts decide the policy before a person is asked) and just
before an approved action runs (`fresh_state`). It is called with keyword arguments
``action_name, arguments, affected_resources, tenant`` and answers an object:
``facts`` (name -> string, number, boolean or null), optionally ``resources`` (current
versions, as the proposal's affected_resources), ``details`` (any JSON the screens show)
and ``source`` (what the reviewer reads as where the facts come from).
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone
from django.utils.module_loading import import_string

from policies.exceptions import PolicyInputError
from policies.selectors import action_type_for, evaluate_proposal

from .. import selectors
from ..choices import spec_for
from ..models import Decision, ReviewRequest
from ._common import policy_input

# The longest `source` label and error text a packet keeps.
_MAX_LABEL = 200
_MAX_ERROR = 500


class FactProviderError(RuntimeError):
    """A fact provider answered something that is not trusted facts."""


def call_fact_provider(
    *,
    provider_path: str,
    action_name: str,
    arguments: Mapping[str, Any],
    affected_resources: Iterable[Any],
    tenant: str,
) -> dict[str, Any]:
    """The provider's answer, checked: {"facts", "resources" (None when it gave none),
    "details", "source"}. Whatever the provider raises propagates; an answer of the wrong
    shape raises FactProviderError."""
    provider = import_string(provider_path)
    answer = provider(
        action_name=action_name,
        arguments=dict(arguments),
        affected_resources=[dict(r) for r in affected_resources if isinstance(r, Mapping)],
        tenant=tenant,
    )
    if not isinstance(answer, Mapping):
        raise FactProviderError(f"answered {type(answer).__name__}, not an object")
    facts = answer.get("facts") or {}
    if not isinstance(facts, Mapping):
        raise FactProviderError("its facts are not an object of named values")
    scalar = (str, int, float, bool, Decimal, type(None))
    wrong = sorted(str(name) for name, value in facts.items() if not isinstance(value, scalar))
    if wrong:
        raise FactProviderError(f"facts {', '.join(wrong)} are not a string, number or boolean")
    resources = answer.get("resources")
    if resources is not None and not isinstance(resources, list):
        raise FactProviderError("its resources are not a list")
    return {
        # JSON-safe as the packet stores them (a Decimal becomes its text).
        "facts": {str(k): float(v) if isinstance(v, Decimal) else v for k, v in facts.items()},
        "resources": resources,
        "details": json.loads(json.dumps(answer.get("details") or {}, default=str)),
        "source": str(answer.get("source") or provider_path)[:_MAX_LABEL],
    }


@dataclass(frozen=True)
class TrustedFacts:
    """What a fact provider said when a proposal arrived, or why it could not say."""

    source: str
    read_at: datetime
    facts: dict[str, Any] = field(default_factory=dict)
    details: Any = field(default_factory=dict)
    error: str = ""

    def packet(self) -> dict[str, Any]:
        """The review packet's `policy["trusted_facts"]`."""
        return {
            "source": self.source,
            "read_at": self.read_at.isoformat(),
            "facts": dict(self.facts),
            "details": self.details,
            "error": self.error,
        }


def read_trusted_facts(
    *,
    action_name: str,
    arguments: Mapping[str, Any],
    affected_resources: Iterable[Any],
    tenant: str,
) -> TrustedFacts | None:
    """The action type's trusted facts for a new proposal (None when it has no provider).
    A provider that fails does not fail the proposal: the failure is the answer's
    `error`, shown to the reviewer, and the caller decides without trusted facts."""
    action_type = action_type_for(action_name)
    provider_path = getattr(action_type, "fact_provider", "") if action_type else ""
    if not provider_path:
        return None
    read_at = timezone.now()
    try:
        answer = call_fact_provider(
            provider_path=provider_path,
            action_name=action_name,
            arguments=arguments,
            affected_resources=affected_resources,
            tenant=tenant,
        )
    except Exception as exc:  # any failure of a foreign system is recorded, not raised
        error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
        return TrustedFacts(source=provider_path, read_at=read_at, error=error)
    return TrustedFacts(
        source=answer["source"],
        read_at=read_at,
        facts=answer["facts"],
        details=answer["details"],
    )


def fresh_state(*, review: ReviewRequest) -> dict[str, Any]:
    """Current facts and resource versions from the action type's fact provider, if any.
    Here a failing provider raises: nothing runs on facts nobody could read."""
    action_type = action_type_for(review.action_name)
    provider_path = getattr(action_type, "fact_provider", "") if action_type else ""
    if not provider_path:
        return {}
    return call_fact_provider(
        provider_path=provider_path,
        action_name=review.action_name,
        arguments=review.final_arguments or review.arguments,
        affected_resources=review.affected_resources or [],
        tenant=review.tenant,
    )


def stale_checks(
    *,
    review: ReviewRequest,
    facts: Mapping[str, Any] | None,
    resources: Iterable[Mapping[str, Any]] | None,
) -> list[dict[str, str]]:
    """Each re-check that fails, as {"check": name, "detail": why}: expired,
    authority_revoked, arguments_invalid, policy_denies, evidence_stale, resource_changed,
    resource_unconfirmed. Empty when the review is still valid."""
    now = timezone.now()
    arguments = review.final_arguments if review.final_arguments is not None else review.arguments
    return [
        *_expiry_checks(review),
        *_authority_checks(review, arguments),
        *_policy_checks(review, arguments, facts),
        *_evidence_checks(review, now),
        *_resource_checks(review, resources),
    ]


def _failed(check: str, detail: str) -> dict[str, str]:
    return {"check": check, "detail": detail}


def _expiry_checks(review: ReviewRequest) -> list[dict[str, str]]:
    if review.is_past_expiry():
        return [_failed("expired", f"the review expired at {review.expires_at.isoformat()}")]
    return []


def _authority_checks(review: ReviewRequest, arguments: Any) -> list[dict[str, str]]:
    failed = []
    for decision in _deciding_decisions(review):
        lost = _lost_authority(review, decision.reviewer, arguments)
        if lost:
            failed.append(_failed("authority_revoked", lost))
    return failed


def _lost_authority(review: ReviewRequest, who: AbstractBaseUser, arguments: Any) -> str:
    # The same rules as at decision time (selectors): the grant up to the amount, the
    # queue, and for an action missing from the catalogue, the queue's ownership.
    refusal = selectors.authority_refusal(review=review, user=who, arguments=arguments)
    if refusal:
        return f"{who.get_username()} no longer may: {refusal}"
    if not selectors.works_in(user=who, queue=review.queue):
        return f"{who.get_username()} no longer works in queue {review.queue.slug}"
    if not selectors.may_act_as_queue_owner(review=review, user=who):
        return f"{who.get_username()} no longer owns {review.queue.slug}"
    return ""


def _deciding_decisions(review: ReviewRequest) -> list[Decision]:
    # The approvals (or edit) that made the review executable: the last uninterrupted round.
    deciding = []
    for decision in review.decisions.select_related("reviewer").order_by("decided_at", "id"):
        if spec_for(decision.choice).executes:
            deciding.append(decision)
        else:
            deciding = []
    return deciding


def _policy_checks(
    review: ReviewRequest, arguments: Any, facts: Mapping[str, Any] | None
) -> list[dict[str, str]]:
    proposal = policy_input(review, arguments, facts)
    try:
        decision = evaluate_proposal(proposal=proposal)
    except PolicyInputError as exc:
        return [
            _failed("arguments_invalid", f"the arguments are no longer valid: {exc.one_line()}")
        ]
    if decision.outcome == "deny":
        return [
            _failed(
                "policy_denies",
                f"the policy now denies it ({decision.rule}): {decision.explanation}",
            )
        ]
    return []


def _evidence_checks(review: ReviewRequest, now: datetime) -> list[dict[str, str]]:
    stale = [e.evidence_id for e in review.evidence.all() if e.fresh_until and e.fresh_until <= now]
    if stale:
        return [_failed("evidence_stale", f"evidence is no longer fresh: {', '.join(stale)}")]
    return []


def _resource_checks(
    review: ReviewRequest, resources: Iterable[Mapping[str, Any]] | None
) -> list[dict[str, str]]:
    current = {
        (str(r.get("type")), str(r.get("id"))): r.get("version")
        for r in (resources or [])
        if isinstance(r, Mapping)
    }
    failed = []
    for resource in review.affected_resources or []:
        if resource.get("version") in (None, ""):
            continue
        key = (resource["type"], resource["id"])
        if current.get(key) in (None, ""):
            failed.append(
                _failed(
                    "resource_unconfirmed",
                    f"could not confirm {key[0]} {key[1]} is unchanged (no current version)",
                )
            )
        elif str(current[key]) != str(resource["version"]):
            failed.append(
                _failed(
                    "resource_changed",
                    f"{key[0]} {key[1]} changed: version {resource['version']} was reviewed, "
                    f"it is now {current[key]}",
                )
            )
    return failed
