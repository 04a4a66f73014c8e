"""An agent's proposal of one or more tool calls: the policy decides each, a review opens
for each a person must judge, and the run records them all."""

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from hitl.db import for_update
from hitl.kernel import Actor
from hitl.kernel.rows import Read
from policies.engine import AUTO_EXECUTE, HUMAN_REVIEW, POLICY_KEYS, PolicyDecision
from policies.exceptions import PolicyInputError
from policies.selectors import action_type_for, default_queue, evaluate_proposal_versioned
from policies.selectors import render_consequence as catalogue_consequence

from ..choices import Choice, default_choices, narrow, possible_choices
from ..exceptions import (
    IdempotencyConflict,
    InvalidReviewInput,
    NoQueueForTenant,
    NotAuthorized,
)
from ..models import (
    Agent,
    AgentRun,
    IdempotencyRecord,
    Queue,
    ReviewRequest,
    RunCall,
)
from ._common import summarise
from ._input import clean_call
from .creation import CallDraft, ReviewDraft, agent_trace
from .proposal_writes import Planned, proposal_write
from .rechecks import TrustedFacts, read_trusted_facts

# Read for every review a proposal opens: composed once (see hitl.kernel.rows).
_QUEUE = Read(Queue, '"t0"."tenant" = %s AND "t0"."slug" = %s')

# The most calls one proposal may carry (a model's turn rarely has more than a few).
MAX_ACTIONS = 20


@dataclass(frozen=True)
class CallResult:
    """What the platform answered about one call of a proposal."""

    decision: PolicyDecision
    review: ReviewRequest | None
    call: RunCall

    @property
    def outcome(self) -> str:
        return self.decision.outcome


@dataclass(frozen=True)
class ProposalResult:
    """What the platform answered to one proposal: its run, and each call in order (the
    first is the whole answer to a proposal of one `action`)."""

    run: AgentRun
    calls: tuple[CallResult, ...]
    # Whether this proposal created the run, and every review it opened (audits too), in
    # order: a new run holds nothing else, so its answer needs nothing read back.
    new_run: bool = False
    opened: tuple[ReviewRequest, ...] = ()

    @property
    def decision(self) -> PolicyDecision:
        return self.calls[0].decision

    @property
    def review(self) -> ReviewRequest | None:
        return self.calls[0].review

    @property
    def outcome(self) -> str:
        return self.calls[0].outcome


def action_propose(*, agent: Agent, proposal: Mapping[str, Any]) -> ProposalResult:
    """Decide each action of an agent's proposal (one `action`, or a batch of `actions`)
    by policy on its own, open a review for each that needs a person, and record every
    call in the run: all of it, or nothing."""
    tenant = proposal.get("tenant") or agent.tenant
    if tenant != agent.tenant:
        # An agent acts for its own tenant only (the default one when it has none).
        raise NotAuthorized(
            f"Agent {agent.name} proposes for tenant '{agent.tenant or 'default'}' only."
        )
    principal = _principal(proposal)
    proposal = {**proposal, "trace": agent_trace(proposal.get("trace"))}
    planned = [_plan(proposal, path, action, tenant) for path, action in _actions(proposal)]
    written = proposal_write(
        agent=agent, tenant=tenant, proposal=proposal, planned=planned, principal=principal
    )
    return ProposalResult(
        run=written.run,
        calls=tuple(
            CallResult(decision=item.decision, review=review, call=call)
            for item, (review, _row, _audit), call in zip(
                planned, written.opened, written.calls, strict=True
            )
        ),
        new_run=written.new_run,
        opened=tuple(r for review, _row, audit in written.opened for r in (review, audit) if r),
    )


def _principal(proposal: Mapping[str, Any]):
    """The person the agent acts for, if it names one."""
    if not proposal.get("on_behalf_of"):
        return None
    principal = get_user_model().objects.filter(username=proposal["on_behalf_of"]).first()
    if principal is None:
        raise InvalidReviewInput(
            f"No user {proposal['on_behalf_of']!r} to act on behalf of.",
            field_errors={"on_behalf_of": ["Unknown user."]},
        )
    return principal


def _actions(proposal: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Each action with the name it has in the request (`action`, `actions[1]`)."""
    single, batch = proposal.get("action"), proposal.get("actions")
    if (single is None) == (batch is None):
        raise InvalidReviewInput(
            "Send one `action` or a list of `actions`: exactly one of them.",
            field_errors={"actions": ["Exactly one of action and actions."]},
        )
    if single is not None:
        return [("action", single)]
    if not isinstance(batch, list) or not 1 <= len(batch) <= MAX_ACTIONS:
        raise InvalidReviewInput(
            f"actions must be a list of 1 to {MAX_ACTIONS} actions.",
            field_errors={"actions": [f"1 to {MAX_ACTIONS} actions."]},
        )
    return [(f"actions[{index}]", action) for index, action in enumerate(batch)]


def _plan(
    proposal: Mapping[str, Any], path: str, action: Mapping[str, Any], tenant: str
) -> Planned:
    """One action decided by the policy, with its review's draft when a person decides."""
    decision, policy_input, trusted, version_id = _decide(proposal, path, action, tenant)
    call = _call_draft(action, path)
    proposal = {**proposal, "action": action, "trusted_facts": trusted}
    if decision.outcome == AUTO_EXECUTE and decision.audit_sample_rate:
        audit = _audit_draft(proposal, decision, call)
        queue = _routed_queue(proposal, tenant, decision)
        return Planned(
            path, action, decision, policy_input, call, queue=queue, audit=audit,
            version_id=version_id,
        )  # fmt: skip
    if decision.outcome != HUMAN_REVIEW:
        return Planned(path, action, decision, policy_input, call, version_id=version_id)
    kind, action_type = _review_kind(proposal, decision)
    draft = _draft(proposal, decision, kind, action_type, call)
    if not draft.choices:
        raise InvalidReviewInput(
            f"{path}: a person must decide this call, and none of its allowed_decisions can "
            "be offered for its review.",
            field_errors={f"{path}.allowed_decisions": ["No choice of its review is allowed."]},
        )
    return Planned(
        path,
        action,
        decision,
        policy_input,
        call,
        queue=_routed_queue(proposal, tenant, decision),
        draft=draft,
        version_id=version_id,
    )


def _decide(
    proposal: Mapping[str, Any], path: str, action: Mapping[str, Any], tenant: str
) -> tuple[PolicyDecision, dict[str, Any], TrustedFacts | None, int | None]:
    """The policy's decision on the action, on the trusted facts where a fact provider
    gives them (they win over what the agent claims), those facts, and the id of the
    policy version that decided."""
    shared = {key: proposal[key] for key in POLICY_KEYS if proposal.get(key) is not None}
    policy_input = {**shared, "action": action, "tenant": tenant}
    trusted = _trusted_facts(proposal, action, tenant)
    claimed = proposal.get("facts")
    if trusted is not None and not trusted.error and isinstance(claimed or {}, Mapping):
        policy_input["facts"] = {**dict(claimed or {}), **trusted.facts}
    try:
        decision, version_id = evaluate_proposal_versioned(proposal=policy_input)
    except PolicyInputError as exc:
        # The policy names an action's fields `action.*`; a batch names each one's place.
        errors = {
            path + key.removeprefix("action") if key.startswith("action") else key: messages
            for key, messages in exc.message_dict.items()
        }
        raise InvalidReviewInput(summarise(errors), field_errors=errors) from exc
    if trusted is not None and trusted.error and decision.outcome == AUTO_EXECUTE:
        decision = _unverified(decision, trusted)
    return decision, policy_input, trusted, version_id


def _trusted_facts(
    proposal: Mapping[str, Any], action: Mapping[str, Any], tenant: str
) -> TrustedFacts | None:
    # Only a well-formed action is worth asking about: the policy refuses the others.
    if not isinstance(action, Mapping) or not isinstance(action.get("name"), str):
        return None
    arguments = action.get("args") or {}
    resources = proposal.get("affected_resources") or []
    if not isinstance(arguments, Mapping) or not isinstance(resources, list):
        return None
    return read_trusted_facts(
        action_name=action["name"].strip(),
        arguments=arguments,
        affected_resources=resources,
        tenant=tenant,
    )


def _unverified(decision: PolicyDecision, trusted: TrustedFacts) -> PolicyDecision:
    """An action the policy would run unattended, when its facts could not be verified:
    a person reviews it instead (nothing runs on facts nobody could read)."""
    return replace(
        decision,
        outcome=HUMAN_REVIEW,
        review_kind=None,
        queue=decision.queue or default_queue(),
        required_approvals=1,
        audit_sample_rate=0,
        explanation=(
            f"{decision.explanation} The trusted facts could not be read from "
            f"{trusted.source} ({trusted.error}), so a person reviews it instead of it "
            "running unverified."
        ).strip(),
    )


def _call_draft(action: Mapping[str, Any], path: str) -> CallDraft:
    call = CallDraft(
        tool_call_id=action.get("tool_call_id") or "",
        description=action.get("description") or "",
        allowed_decisions=tuple(action.get("allowed_decisions") or ()),
        answerable=action.get("answerable", False),
    )
    errors: dict[str, list[str]] = {}
    clean_call(call, path, errors)
    if errors:
        raise InvalidReviewInput(summarise(errors), field_errors=errors)
    return call


def _review_kind(proposal: Mapping[str, Any], decision: PolicyDecision) -> tuple[str, Any]:
    """The kind of review the action gets (an edit needs the generated content)."""
    action_type = action_type_for(proposal["action"]["name"])
    kind = decision.review_kind or (action_type.default_review_kind if action_type else "approval")
    if kind == "edit" and not (proposal.get("content") or "").strip():
        raise InvalidReviewInput(
            "This action is reviewed as an edit of its content; send the generated content.",
            field_errors={"content": ["Required for an edit review."]},
        )
    return kind, action_type


def _audit_draft(
    proposal: Mapping[str, Any], decision: PolicyDecision, call: CallDraft
) -> ReviewDraft:
    """The after-the-fact approval of an auto-executed action: approve, or reject saying
    why the auto-execution was wrong; it neither executes nor holds the run."""
    action_type = action_type_for(proposal["action"]["name"])
    draft = _draft(proposal, decision, "approval", action_type, call)
    return replace(
        draft,
        choices=[Choice.APPROVE.value, Choice.REJECT.value],
        required_approvals=1,
        due_at=None,
        audit=True,
    )


def _routed_queue(proposal: Mapping[str, Any], tenant: str, decision: PolicyDecision) -> Queue:
    slug = decision.queue or default_queue()
    # Only the tenant's own queue: another tenant's queue of the same name is never a home.
    queue = _QUEUE.first(tenant, slug)
    if queue is None:
        raise NoQueueForTenant(
            f"The policy routes {proposal['action']['name']} to queue '{slug}', and tenant "
            f"'{tenant or 'default'}' has no queue of that name; nothing was created. Ask "
            "an administrator to create it for this tenant.",
            field_errors={"queue": [f"Tenant '{tenant or 'default'}' has no queue '{slug}'."]},
        )
    return queue


def _draft(
    proposal: Mapping[str, Any], decision: PolicyDecision, kind: str, action_type, call: CallDraft
) -> ReviewDraft:
    """The review's packet: the agent's proposal with what the policy decided about it,
    offering the choices both the policy and the agent's framework allow."""
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
    choices = narrow(
        [c for c in possible_choices(kind) if c in offered],
        kind=kind,
        allowed_decisions=call.allowed_decisions or None,
        answerable=call.answerable,
    )
    sla = decision.sla_minutes
    cost = proposal.get("estimated_cost_usd")
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
        question=proposal.get("question") or "",
        options_considered=proposal.get("options_considered") or [],
        risk=decision.risk,
        policy={
            **decision.to_dict(),
            "version": decision.policy_version,
            "input": {
                "estimated_cost_usd": None if cost is None else str(cost),
                "audience": proposal.get("audience") or "internal",
                "facts": dict(proposal.get("facts") or {}),
            },
            **_packet_extras(proposal),
        },
        choices=choices,
        required_approvals=decision.required_approvals,
        due_at=timezone.now() + timedelta(minutes=sla) if sla else None,
        versions={**dict(proposal.get("versions") or {}), "policy": decision.policy_version or ""},
    )


def _packet_extras(proposal: Mapping[str, Any]) -> dict[str, Any]:
    """What the packet keeps beside the policy's decision: the trusted facts it decided on,
    and the link to the agent's own trace."""
    extras: dict[str, Any] = {}
    trusted = proposal.get("trusted_facts")
    if trusted is not None:
        extras["trusted_facts"] = trusted.packet()
    trace = proposal.get("trace")
    if trace:
        extras["agent_trace"] = trace
    return extras


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
