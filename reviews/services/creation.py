"""Opening a review: the proposal checked, the run paused, the call recorded, the packet
ready to show."""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from hitl.internals import cache_related, set_prefetched
from hitl.kernel import Actor
from hitl.kernel.history import insert_with_history
from hitl.kernel.rows import insert_rows
from policies.engine import HUMAN_REVIEW

from ..exceptions import (
    InvalidReviewInput,
)
from ..models import (
    Agent,
    AgentRun,
    Evidence,
    Queue,
    ResourceRef,
    ReviewKind,
    ReviewRequest,
    Risk,
    RunCall,
)
from ..signals import review_opened, send_on_commit
from ._common import (
    full_clean_or_refuse,
    summarise,
)
from ._input import clean_call, clean_evidence, clean_resources, enum_value, validate_choices
from .runs import calls_record, run_lock


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
    question: str = ""
    options_considered: Iterable[Any] = ()
    risk: str = Risk.MEDIUM
    policy: Mapping[str, Any] = field(default_factory=dict)
    choices: Iterable[str] | None = None
    required_approvals: int = 1
    due_at: datetime | None = None
    expires_at: datetime | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    audit: bool = False

    def pending_tool_call(self) -> dict[str, Any]:
        """The call the run waits on while the review is open."""
        return {
            "action": self.action_name,
            "target_system": self.target_system,
            "args": dict(self.arguments or {}),
        }


# Draft fields a review stores as they are (the others are cleaned first).
_AS_GIVEN = (
    "action_name",
    "target_system",
    "summary",
    "consequence",
    "content",
    "confidence",
    "uncertainty",
    "question",
    "risk",
    "required_approvals",
    "audit",
)


@dataclass(frozen=True)
class CallDraft:
    """The agent's own word on one tool call: its id, what it is, what it can consume."""

    tool_call_id: str = ""
    description: str = ""
    # The decisions the agent can consume (FRAMEWORK_DECISIONS); empty: any.
    allowed_decisions: tuple[str, ...] = ()
    # The reviewer may answer in the tool's place.
    answerable: bool = False

    def row(
        self,
        *,
        action_name: str,
        target_system: str,
        args: Mapping[str, Any],
        outcome: str,
        explanation: str = "",
        review: ReviewRequest | None = None,
    ) -> RunCall:
        """The call's row, for `calls_record`."""
        return RunCall(
            tool_call_id=self.tool_call_id,
            description=self.description,
            allowed_decisions=list(self.allowed_decisions),
            answerable=self.answerable,
            action_name=action_name,
            target_system=target_system,
            args=dict(args),
            outcome=outcome,
            explanation=explanation,
            review=review,
        )


_OTEL_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def agent_trace(trace: Any) -> dict[str, str]:
    """The link to the agent's own trace a proposal may carry, checked: a LangSmith run
    URL (https) and an OpenTelemetry trace id (32 lowercase hex, not all zero); {} when
    none. InvalidReviewInput names the field that is wrong."""
    if trace in (None, {}):
        return {}
    if not isinstance(trace, Mapping):
        raise InvalidReviewInput(
            "trace must be an object with langsmith_url and/or otel_trace_id.",
            field_errors={"trace": ["Must be an object."]},
        )
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(trace) - {"langsmith_url", "otel_trace_id"})
    if unknown:
        errors["trace"] = [f"Unknown keys: {', '.join(map(str, unknown))}."]
    url = trace.get("langsmith_url") or ""
    if url and not _is_https_url(url):
        errors["trace.langsmith_url"] = ["Must be an https URL of at most 2000 characters."]
    trace_id = trace.get("otel_trace_id") or ""
    if trace_id and (
        not isinstance(trace_id, str) or not _OTEL_TRACE_ID.match(trace_id) or not int(trace_id, 16)
    ):
        errors["trace.otel_trace_id"] = ["Must be 32 lowercase hex digits, not all zero."]
    if errors:
        raise InvalidReviewInput(summarise(errors), field_errors=errors)
    return {
        key: value for key, value in (("langsmith_url", url), ("otel_trace_id", trace_id)) if value
    }


def _is_https_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 2000 or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname)


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
    call: CallDraft | None = None,
) -> ReviewRequest:
    """Open a review for an agent's proposal, pausing its run until a person decides; the
    run records the call (`call`: the agent's word on it)."""
    actor = Actor.of_agent(agent)
    tenant = agent.tenant if tenant is None else tenant
    now = timezone.now()
    cleaned = _cleaned(draft, run_id=run_id, queue=queue, tenant=tenant, now=now)
    call = call or CallDraft()
    errors: dict[str, list[str]] = {}
    clean_call(call, "call", errors)
    if errors:
        raise InvalidReviewInput(summarise(errors), field_errors=errors)
    with transaction.atomic():
        run = run_lock(
            run_id=run_id,
            agent=agent,
            tenant=tenant,
            thread_id=thread_id,
            versions=cleaned["versions"],
            actor=actor,
            reason=f"paused for a review of {draft.action_name}",
            pending_tool_call=draft.pending_tool_call(),
            checkpoint=checkpoint,
        )
        review = _insert(run, queue, draft, cleaned, actor=actor, now=now, user=proposed_by_user)
        calls_record(run=run, calls=[_call_row(call, review)], actor=actor)
    return review


def review_open(
    *,
    run: AgentRun,
    queue: Queue,
    draft: ReviewDraft,
    call: CallDraft,
    proposed_by_user: AbstractBaseUser | None = None,
) -> tuple[ReviewRequest, RunCall]:
    """Open a review in a run the caller locked and paused (a proposal of several calls),
    and the call's row for the caller to record with the others."""
    actor = Actor.of_agent(run.agent)
    now = timezone.now()
    cleaned = _cleaned(draft, run_id=run.run_id, queue=queue, tenant=run.tenant, now=now)
    review = _insert(run, queue, draft, cleaned, actor=actor, now=now, user=proposed_by_user)
    return review, _call_row(call, review)


def _call_row(call: CallDraft, review: ReviewRequest) -> RunCall:
    return call.row(
        action_name=review.action_name,
        target_system=review.target_system,
        args=review.arguments,
        outcome=HUMAN_REVIEW,
        explanation=str((review.policy or {}).get("explanation") or ""),
        review=review,
    )


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


def _insert(
    run: AgentRun,
    queue: Queue,
    draft: ReviewDraft,
    cleaned: dict[str, Any],
    *,
    actor: Actor,
    now: datetime,
    user: AbstractBaseUser | None,
) -> ReviewRequest:
    """Validate and save a new review with its evidence, ready to show without a query."""
    review = ReviewRequest(
        run=run,
        queue=queue,
        tenant=run.tenant,
        proposed_by=actor.label,
        proposed_by_user=user,
        created_at=now,
        next_reminder_at=queue.first_reminder_at(cleaned["due_at"]),
        **{name: getattr(draft, name) for name in _AS_GIVEN},
        **{name: value for name, value in cleaned.items() if name != "evidence"},
    )
    full_clean_or_refuse(review, exclude=["run", "queue", "review_id", "state"])
    # With its history row, in one statement on PostgreSQL. Built just above, it is
    # pending (ReviewRequest.save's check for a new row); transitions move it afterwards.
    insert_with_history(
        [review], actor=actor, reason=f"created by {actor.label}: {review.action_name}"
    )
    index_resources(review)
    items = insert_with_history(
        [
            Evidence(review=review, position=position, supplied_at=now, **row)
            for position, row in enumerate(cleaned["evidence"])
        ],
        actor=actor,
        reason="supplied with the proposal",
    )
    # The caller may show the new packet at once: nothing to fetch back.
    set_prefetched(review, "evidence", items)
    set_prefetched(review, "decisions", [])
    cache_related(review, "execution", None)  # none yet
    send_on_commit(review_opened, review_id=review.review_id)
    return review


def index_resources(review: ReviewRequest) -> None:
    """The review in its resources' history (see ResourceRef): one row per resource."""
    keys = dict.fromkeys(
        (str(r["type"]), str(r["id"])) for r in review.affected_resources or [] if r.get("id")
    )
    insert_rows(
        [
            ResourceRef(
                review=review,
                tenant=review.tenant,
                resource_type=kind,
                resource_id=ident,
                created_at=review.created_at,
            )
            for kind, ident in keys
        ]
    )
