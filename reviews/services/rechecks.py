"""Before anything executes, it is re-validated: what held when the review was decided
must still hold when its action is about to run.

One function per check family (expiry, authority, policy, evidence freshness, resource
versions); `stale_checks` runs them all and `fresh_state` asks the action type's fact
provider for the trusted current facts and versions to check against.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime
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


def fresh_state(*, review: ReviewRequest) -> dict[str, Any]:
    """Current facts and resource versions from the action type's fact provider, if any."""
    action_type = action_type_for(review.action_name)
    provider_path = getattr(action_type, "fact_provider", "") if action_type else ""
    if not provider_path:
        return {}
    provider = import_string(provider_path)
    answer = provider(
        action_name=review.action_name,
        arguments=review.final_arguments or review.arguments,
        affected_resources=review.affected_resources,
        tenant=review.tenant,
    )
    return answer if isinstance(answer, dict) else {}


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
