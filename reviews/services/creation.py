"""Opening a review: the proposal checked, the run paused, the packet ready to show."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from hitl.db import for_update
from hitl.internals import cache_related, set_prefetched
from hitl.kernel import Actor

from ..exceptions import (
    InvalidReviewInput,
)
from ..models import (
    Agent,
    AgentRun,
    Evidence,
    Queue,
    ReviewKind,
    ReviewRequest,
    Risk,
    RunStatus,
)
from ._common import (
    create_with_history,
    full_clean_or_refuse,
    stamp,
    summarise,
)
from ._input import clean_evidence, clean_resources, enum_value, validate_choices


@dataclass(frozen=True)
class ReviewDraft:
    """The packet a new review carries: the proposal, the case for it, and its routing."""

    kind: str
    action_name: str
    summary: str
    target_system: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    consequence: str = ""
    content: str = ""
    evidence: Iterable[Mapping[str, Any]] = ()
    affected_resources: Iterable[Mapping[str, Any]] = ()
    confidence: float | None = None
    uncertainty: str = ""
    options_considered: Iterable[Any] = ()
    risk: str = Risk.MEDIUM
    policy: Mapping[str, Any] = field(default_factory=dict)
    choices: Iterable[str] | None = None
    required_approvals: int = 1
    due_at: datetime | None = None
    expires_at: datetime | None = None
    versions: Mapping[str, str] = field(default_factory=dict)


# Draft fields a review stores as they are (the others are cleaned first).
_AS_GIVEN = (
    "action_name",
    "target_system",
    "summary",
    "consequence",
    "content",
    "confidence",
    "uncertainty",
    "risk",
    "required_approvals",
)


def review_create(
    *,
    agent: Agent,
    run_id: str,
    queue: Queue,
    draft: ReviewDraft,
    tenant: str | None = None,
    thread_id: str = "",
    checkpoint: Mapping[str, Any] | None = None,
    proposed_by_user: AbstractBaseUser | None = None,
) -> ReviewRequest:
    """Open a review for an agent's proposal, pausing its run until a person decides."""
    actor = Actor.of_agent(agent)
    tenant = agent.tenant if tenant is None else tenant
    now = timezone.now()
    cleaned = _cleaned(draft, run_id=run_id, queue=queue, tenant=tenant, now=now)
    pause = {
        "status": RunStatus.WAITING,
        "pending_tool_call": {
            "action": draft.action_name,
            "target_system": draft.target_system,
            "args": cleaned["arguments"],
        },
    }
    if checkpoint is not None:
        pause["checkpoint"] = dict(checkpoint)
    with transaction.atomic():
        run = _pause_run(
            run_id=run_id,
            agent=agent,
            tenant=tenant,
            thread_id=thread_id,
            versions=cleaned["versions"],
            actor=actor,
            pause=pause,
            reason=f"paused for a review of {draft.action_name}",
        )
        review = ReviewRequest(
            run=run,
            queue=queue,
            tenant=tenant,
            proposed_by=actor.label,
            proposed_by_user=proposed_by_user,
            created_at=now,
            next_reminder_at=queue.first_reminder_at(cleaned["due_at"]),
            **{name: getattr(draft, name) for name in _AS_GIVEN},
            **{name: value for name, value in cleaned.items() if name != "evidence"},
        )
        _insert(review, cleaned["evidence"], actor=actor, now=now)
    return review


def _cleaned(
    draft: ReviewDraft, *, run_id: str, queue: Queue, tenant: str, now: datetime
) -> dict[str, Any]:
    """The draft's fields that need cleaning, cleaned (InvalidReviewInput naming every
    problem at once)."""
    errors: dict[str, list[str]] = {}
    kind = enum_value(ReviewKind, draft.kind, "kind", errors)
    cleaned = {
        "kind": kind,
        "choices": validate_choices(kind, draft.choices, errors),
        "evidence": clean_evidence(draft.evidence, errors),
        "affected_resources": clean_resources(draft.affected_resources, errors),
    }
    if draft.expires_at is not None and draft.expires_at <= now:
        errors.setdefault("expires_at", []).append("expires_at must be in the future.")
    if not isinstance(draft.arguments or {}, Mapping):
        errors.setdefault("arguments", []).append("arguments must be a JSON object.")
    if not run_id or not str(run_id).strip():
        errors.setdefault("run_id", []).append("run_id is required.")
    if queue.tenant != tenant:
        # Tenants never share a queue: its reviewers would see another customer's work.
        errors.setdefault("queue", []).append(
            f"Queue {queue.slug} belongs to tenant '{queue.tenant or 'default'}', "
            f"not to '{tenant or 'default'}'."
        )
    if errors:
        raise InvalidReviewInput(summarise(errors), field_errors=errors)
    versions, policy = dict(draft.versions or {}), dict(draft.policy or {})
    if policy.get("version") and "policy" not in versions:
        versions["policy"] = policy["version"]
    return {
        **cleaned,
        "arguments": dict(draft.arguments or {}),
        "options_considered": list(draft.options_considered),
        "policy": policy,
        "versions": versions,
        "due_at": draft.due_at or now + queue.sla,
        "expires_at": draft.expires_at or now + queue.expiry,
    }


def _insert(review: ReviewRequest, evidence_rows: list[dict], *, actor: Actor, now) -> None:
    """Validate and save a new review with its evidence, ready to show without a query."""
    full_clean_or_refuse(review, exclude=["run", "queue", "review_id", "state"])
    stamp(review, actor, f"created by {actor.label}: {review.action_name}")
    review.save()
    items = create_with_history(
        [
            Evidence(review=review, position=position, supplied_at=now, **row)
            for position, row in enumerate(evidence_rows)
        ],
        actor=actor,
        reason="supplied with the proposal",
    )
    # The caller may show the new packet at once: nothing to fetch back.
    set_prefetched(review, "evidence", items)
    set_prefetched(review, "decisions", [])
    cache_related(review, "execution", None)  # none yet


def _pause_run(
    *,
    run_id: str,
    agent: Agent,
    tenant: str,
    thread_id: str,
    versions: Mapping[str, str],
    actor: Actor,
    pause: Mapping[str, Any],
    reason: str,
) -> AgentRun:
    """The run, locked, set to `pause`; a run's first proposal creates it so, in one write."""
    run = for_update(AgentRun.objects.all()).filter(run_id=run_id).first()
    if run is None:
        run = AgentRun(
            run_id=run_id,
            agent=agent,
            tenant=tenant,
            thread_id=thread_id,
            agent_version=versions.get("agent", ""),
            model_version=versions.get("model", ""),
            prompt_version=versions.get("prompt", ""),
            **pause,
        )
        # The agent is the authenticated one: no need to look it up again.
        full_clean_or_refuse(run, validate_unique=False, exclude=["agent"])
        try:
            with transaction.atomic():
                stamp(run, actor, f"run started, {reason}")
                run.save()
            return run
        except IntegrityError:
            # The same run's first proposal arrived twice at once; the other one created it.
            run = for_update(AgentRun.objects.all()).get(run_id=run_id)
    if run.agent_id != agent.pk or run.tenant != tenant:
        # A run id is the agent's own; another agent or tenant never writes into it.
        raise InvalidReviewInput(
            f"run {run_id} belongs to another agent or tenant.",
            field_errors={"run_id": ["This run belongs to another agent or tenant."]},
        )
    if run.status in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.HANDED_OVER):
        raise InvalidReviewInput(
            f"run {run_id} is {run.status}; start a new run.",
            field_errors={"run_id": [f"This run is {run.status}."]},
        )
    for name, value in pause.items():
        setattr(run, name, value)
    stamp(run, actor, reason)
    run.save()
    return run
