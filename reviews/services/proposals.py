"""An agent's proposal: the policy decides, and a review opens when a person must judge."""

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from hitl.db import for_update
from hitl.kernel import Actor
from policies.engine import POLICY_KEYS, PolicyDecision
from policies.exceptions import PolicyInputError
from policies.selectors import action_type_for, default_queue, evaluate_proposal
from policies.selectors import render_consequence as catalogue_consequence
from policies.services import evaluation_record

from ..choices import Choice, default_choices, possible_choices
from ..exceptions import (
    IdempotencyConflict,
    InvalidReviewInput,
    NoQueueForTenant,
    NotAuthorized,
)
from ..models import (
    Agent,
    IdempotencyRecord,
    Queue,
    ReviewRequest,
)
from .creation import ReviewDraft, review_create


@dataclass(frozen=True)
class ProposalResult:
    """What the platform answered to one proposal."""

    decision: PolicyDecision
    review: ReviewRequest | None

    @property
    def outcome(self) -> str:
        return self.decision.outcome


def action_propose(*, agent: Agent, proposal: Mapping[str, Any]) -> ProposalResult:
    """Decide an agent's proposal by policy; open a review when it needs a person."""
    tenant = proposal.get("tenant") or agent.tenant
    if tenant != agent.tenant:
        # An agent acts for its own tenant only (the default one when it has none).
        raise NotAuthorized(
            f"Agent {agent.name} proposes for tenant '{agent.tenant or 'default'}' only."
        )
    principal = None
    if proposal.get("on_behalf_of"):
        principal = get_user_model().objects.filter(username=proposal["on_behalf_of"]).first()
        if principal is None:
            raise InvalidReviewInput(
                f"No user {proposal['on_behalf_of']!r} to act on behalf of.",
                field_errors={"on_behalf_of": ["Unknown user."]},
            )
    policy_input = {key: proposal[key] for key in POLICY_KEYS if key in proposal}
    policy_input["tenant"] = tenant
    try:
        decision = evaluate_proposal(proposal=policy_input)
    except PolicyInputError as exc:
        raise InvalidReviewInput(exc.one_line(), field_errors=exc.message_dict) from exc

    with transaction.atomic():
        evaluation_record(
            proposal=json.loads(json.dumps(policy_input, default=str)),
            decision=decision,
            actor_label=f"agent:{agent.name}",
        )
        review = None
        if decision.outcome == "human_review":
            review = _open_review(
                agent=agent,
                proposal=proposal,
                tenant=tenant,
                decision=decision,
                principal=principal,
            )
    return ProposalResult(decision=decision, review=review)


def _open_review(
    *,
    agent: Agent,
    proposal: Mapping[str, Any],
    tenant: str,
    decision: PolicyDecision,
    principal=None,
) -> ReviewRequest:
    """A review for a proposal the policy sent to people, in the queue it names."""
    action = proposal["action"]
    action_type = action_type_for(action["name"])
    kind = decision.review_kind or (action_type.default_review_kind if action_type else "approval")
    if kind == "edit" and not (proposal.get("content") or "").strip():
        raise InvalidReviewInput(
            "This action is reviewed as an edit of its content; send the generated content.",
            field_errors={"content": ["Required for an edit review."]},
        )
    return review_create(
        agent=agent,
        run_id=proposal["run_id"],
        thread_id=proposal.get("thread_id") or "",
        queue=_routed_queue(proposal, tenant, decision),
        draft=_draft(proposal, decision, kind, action_type),
        tenant=tenant,
        checkpoint=proposal.get("checkpoint"),
        proposed_by_user=principal,
    )


def _routed_queue(proposal: Mapping[str, Any], tenant: str, decision: PolicyDecision) -> Queue:
    slug = decision.queue or default_queue()
    # Only the tenant's own queue: another tenant's queue of the same name is never a home.
    queue = Queue.objects.filter(tenant=tenant, slug=slug).first()
    if queue is None:
        raise NoQueueForTenant(
            f"The policy routes {proposal['action']['name']} to queue '{slug}', and tenant "
            f"'{tenant or 'default'}' has no queue of that name; nothing was created. Ask "
            "an administrator to create it for this tenant.",
            field_errors={"queue": [f"Tenant '{tenant or 'default'}' has no queue '{slug}'."]},
        )
    return queue


def _draft(
    proposal: Mapping[str, Any], decision: PolicyDecision, kind: str, action_type
) -> ReviewDraft:
    """The review's packet: the agent's proposal with what the policy decided about it."""
    action = proposal["action"]
    args = dict(action.get("args") or {})
    # The catalogue's sentence is trusted; the agent's own is only a fallback.
    consequence = (
        catalogue_consequence(action_name=action["name"], args=args)
        if action_type is not None
        else proposal.get("consequence") or ""
    )
    schema = action_type.args_schema if action_type is not None else {}
    # Typed arguments can be re-validated after an edit, so one reviewer may correct them;
    # a review that needs several approvers is not one person's to rewrite.
    editable = bool((schema or {}).get("properties")) and decision.required_approvals == 1
    offered = set(default_choices(kind)) | ({Choice.EDIT.value} if editable else set())
    sla = decision.sla_minutes
    return ReviewDraft(
        kind=kind,
        action_name=action["name"],
        target_system=action.get("target_system") or "",
        arguments=args,
        summary=proposal.get("summary") or "",
        consequence=consequence,
        content=proposal.get("content") or "",
        evidence=proposal.get("evidence") or [],
        affected_resources=proposal.get("affected_resources") or [],
        confidence=proposal.get("confidence"),
        uncertainty=proposal.get("uncertainty") or "",
        options_considered=proposal.get("options_considered") or [],
        risk=decision.risk,
        policy={
            **decision.to_dict(),
            "version": decision.policy_version,
            "input": {
                "estimated_cost_usd": str(proposal.get("estimated_cost_usd")),
                "audience": proposal.get("audience") or "internal",
                "facts": dict(proposal.get("facts") or {}),
            },
        },
        choices=[c for c in possible_choices(kind) if c in offered],
        required_approvals=decision.required_approvals,
        due_at=timezone.now() + timedelta(minutes=sla) if sla else None,
        versions={**dict(proposal.get("versions") or {}), "policy": decision.policy_version or ""},
    )


def fingerprint(body: Any) -> str:
    """The same request body always gives the same fingerprint, whatever its key order."""
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def idempotent_call(
    *,
    actor: Actor,
    key: str,
    body_fingerprint: str,
    produce: Callable[[], tuple[int, dict]],
) -> tuple[int, dict, bool]:
    """Run `produce` once per (agent, key): a retry gets the first answer back (replayed
    True) and creates nothing new; the same key with another body is refused."""
    agent = actor.agent
    if agent is None:
        raise NotAuthorized("Idempotency keys are for agents.")
    key = key.strip()
    if not key or len(key) > 200:
        raise InvalidReviewInput(
            "Idempotency-Key must be 1 to 200 characters.",
            field_errors={"Idempotency-Key": ["1 to 200 characters."]},
        )
    with transaction.atomic(durable=True):
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    agent=agent, key=key, fingerprint=body_fingerprint
                )
        except IntegrityError:
            # A first request with this key committed (or was waiting on us); replay it.
            record = for_update(IdempotencyRecord.objects.all()).get(agent=agent, key=key)
            if record.fingerprint != body_fingerprint:
                raise IdempotencyConflict(
                    "This Idempotency-Key was used with a different request body."
                ) from None
            return record.status_code, record.response, True
        status, response = produce()
        record.status_code, record.response = status, response
        record.save(update_fields=["status_code", "response"])
    return status, response, False
