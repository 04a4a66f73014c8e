"""The review workflow: open a review, decide it, supply evidence, cancel, expire."""

import difflib
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from hitl.db import for_update
from hitl.kernel import Actor
from policies.exceptions import PolicyInputError
from policies.selectors import action_type_for, default_queue, evaluate_proposal

from .. import selectors
from ..exceptions import (
    AlreadyDecided,
    DuplicateApproval,
    InvalidReviewInput,
    NotAuthorized,
    ReasonRequired,
    ReviewExpired,
    TransitionNotAllowed,
)
from ..models import (
    CHOICES_BY_KIND,
    EXECUTING_CHOICES,
    FINAL_STATES,
    Agent,
    AgentRun,
    Choice,
    Decision,
    Evidence,
    ExpiryBehaviour,
    Queue,
    ReviewKind,
    ReviewRequest,
    ReviewState,
    Risk,
    RunStatus,
)
from ..signals import review_decided
from ..validation import json_problem
from ._common import (
    check_agent_owns,
    create_with_history,
    lock_review,
    move,
    policy_input,
    refresh_run_status,
    save_transition,
    stamp,
    summarise,
)
from .execution import queue_executor_on_commit
from .webhooks import webhook_queue

logger = logging.getLogger(__name__)

# --- creation ---------------------------------------------------------------------------


def review_create(
    *,
    agent: Agent,
    run_id: str,
    kind: str,
    queue: Queue,
    action_name: str,
    summary: str,
    target_system: str = "",
    arguments: Mapping[str, Any] | None = None,
    consequence: str = "",
    content: str = "",
    evidence: Iterable[Mapping[str, Any]] = (),
    affected_resources: Iterable[Mapping[str, Any]] = (),
    confidence: float | None = None,
    uncertainty: str = "",
    options_considered: Iterable[Any] = (),
    risk: str = Risk.MEDIUM,
    policy: Mapping[str, Any] | None = None,
    choices: Iterable[str] | None = None,
    required_approvals: int = 1,
    due_at: datetime | None = None,
    expires_at: datetime | None = None,
    versions: Mapping[str, str] | None = None,
    tenant: str | None = None,
    thread_id: str = "",
    checkpoint: Mapping[str, Any] | None = None,
    proposed_by_user: AbstractBaseUser | None = None,
) -> ReviewRequest:
    """Open a review for an agent's proposal, pausing its run until a person decides."""
    actor = Actor.of_agent(agent)
    tenant = agent.tenant if tenant is None else tenant
    now = timezone.now()
    errors: dict[str, list[str]] = {}
    kind_value = _enum_value(ReviewKind, kind, "kind", errors)
    choice_values = _validate_choices(kind_value, choices, errors)
    evidence_rows = _clean_evidence(evidence, errors)
    resources = _clean_resources(affected_resources, errors)
    if expires_at is not None and expires_at <= now:
        errors.setdefault("expires_at", []).append("expires_at must be in the future.")
    if not isinstance(arguments or {}, Mapping):
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

    versions = dict(versions or {})
    policy = dict(policy or {})
    if policy.get("version") and "policy" not in versions:
        versions["policy"] = policy["version"]

    with transaction.atomic():
        pause = {
            "status": RunStatus.WAITING,
            "pending_tool_call": {
                "action": action_name,
                "target_system": target_system,
                "args": dict(arguments or {}),
            },
        }
        if checkpoint is not None:
            pause["checkpoint"] = dict(checkpoint)
        run = _pause_run(
            run_id=run_id,
            agent=agent,
            tenant=tenant,
            thread_id=thread_id,
            versions=versions,
            actor=actor,
            pause=pause,
            reason=f"paused for a review of {action_name}",
        )
        review = ReviewRequest(
            run=run,
            kind=kind_value,
            tenant=tenant,
            action_name=action_name,
            target_system=target_system,
            arguments=dict(arguments or {}),
            summary=summary,
            consequence=consequence,
            content=content,
            affected_resources=resources,
            confidence=confidence,
            uncertainty=uncertainty,
            options_considered=list(options_considered),
            policy=policy,
            risk=risk,
            queue=queue,
            choices=choice_values,
            required_approvals=required_approvals,
            due_at=due_at or now + queue.sla,
            expires_at=expires_at or now + queue.expiry,
            next_reminder_at=queue.first_reminder_at(due_at or now + queue.sla),
            versions=versions,
            proposed_by=actor.label,
            proposed_by_user=proposed_by_user,
            created_at=now,
        )
        try:
            review.full_clean(exclude=["run", "queue", "review_id", "state"])
        except ValidationError as exc:
            raise InvalidReviewInput(
                summarise(exc.message_dict), field_errors=exc.message_dict
            ) from exc
        stamp(review, actor, f"created by {actor.label}: {action_name}")
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
        review._prefetched_objects_cache = {
            "evidence": _as_prefetched(review.evidence, items),
            "decisions": _as_prefetched(review.decisions, []),
        }
        ReviewRequest.execution.related.set_cached_value(review, None)  # none yet
    return review


def _as_prefetched(manager, rows: list):
    """A related manager's queryset holding `rows`, as prefetch_related leaves it."""
    queryset = manager.get_queryset()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    return queryset


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
        try:
            # The agent is the authenticated one: no need to look it up again.
            run.full_clean(validate_unique=False, exclude=["agent"])
        except ValidationError as exc:
            raise InvalidReviewInput(
                summarise(exc.message_dict), field_errors=exc.message_dict
            ) from exc
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


# --- reviewer decisions -----------------------------------------------------------------


def review_approve(
    *,
    review_id: str,
    reviewer: AbstractBaseUser,
    reason: str = "",
    opened_at: datetime | None = None,
) -> Decision:
    """Approve the action as proposed (or accept generated content as is)."""
    return _decide(
        review_id=review_id,
        reviewer=reviewer,
        choice=Choice.APPROVE,
        reason=reason,
        opened_at=opened_at,
    )


def review_edit(
    *,
    review_id: str,
    reviewer: AbstractBaseUser,
    arguments: Mapping[str, Any] | None = None,
    content: str | None = None,
    reason: str = "",
    opened_at: datetime | None = None,
) -> Decision:
    """Approve the action with the reviewer's corrected arguments or content."""
    return _decide(
        review_id=review_id,
        reviewer=reviewer,
        choice=Choice.EDIT,
        reason=reason,
        arguments=arguments,
        content=content,
        opened_at=opened_at,
    )


def review_reject(
    *,
    review_id: str,
    reviewer: AbstractBaseUser,
    reason: str,
    opened_at: datetime | None = None,
) -> Decision:
    """Refuse the action; the run stops or re-plans with the reason."""
    return _decide(
        review_id=review_id,
        reviewer=reviewer,
        choice=Choice.REJECT,
        reason=reason,
        opened_at=opened_at,
    )


def review_escalate(
    *,
    review_id: str,
    reviewer: AbstractBaseUser,
    reason: str,
    opened_at: datetime | None = None,
) -> Decision:
    """Hand the review to the queue's escalation owner, saying why."""
    return _decide(
        review_id=review_id,
        reviewer=reviewer,
        choice=Choice.ESCALATE,
        reason=reason,
        opened_at=opened_at,
    )


def review_request_more_evidence(
    *,
    review_id: str,
    reviewer: AbstractBaseUser,
    reason: str,
    opened_at: datetime | None = None,
) -> Decision:
    """Ask the agent a question; the review waits for its evidence."""
    return _decide(
        review_id=review_id,
        reviewer=reviewer,
        choice=Choice.REQUEST_MORE_EVIDENCE,
        reason=reason,
        opened_at=opened_at,
    )


def review_take_over(
    *,
    review_id: str,
    reviewer: AbstractBaseUser,
    reason: str = "",
    opened_at: datetime | None = None,
) -> Decision:
    """A person takes the case over from the agent; the run is handed over to them."""
    return _decide(
        review_id=review_id,
        reviewer=reviewer,
        choice=Choice.TAKE_OVER,
        reason=reason,
        opened_at=opened_at,
    )


def review_guide(
    *,
    review_id: str,
    reviewer: AbstractBaseUser,
    reason: str,
    opened_at: datetime | None = None,
) -> Decision:
    """The agent continues, re-planning with the reviewer's guidance (nothing executes)."""
    return _decide(
        review_id=review_id,
        reviewer=reviewer,
        choice=Choice.GUIDE,
        reason=reason,
        opened_at=opened_at,
    )


def review_decide(
    *,
    review_id: str,
    reviewer: AbstractBaseUser,
    choice: str,
    reason: str = "",
    arguments: Mapping[str, Any] | None = None,
    content: str | None = None,
    opened_at: datetime | None = None,
) -> Decision:
    """Record one reviewer's choice; the entry point shared by the admin and the API."""
    errors: dict[str, list[str]] = {}
    choice_value = _enum_value(Choice, choice, "choice", errors)
    if errors:
        raise InvalidReviewInput(summarise(errors), field_errors=errors)
    return _decide(
        review_id=review_id,
        reviewer=reviewer,
        choice=choice_value,
        reason=reason,
        arguments=arguments,
        content=content,
        opened_at=opened_at,
    )


def _decide(
    *,
    review_id: str,
    reviewer: AbstractBaseUser,
    choice: str,
    reason: str,
    arguments: Mapping[str, Any] | None = None,
    content: str | None = None,
    opened_at: datetime | None = None,
) -> Decision:
    reason = (reason or "").strip()
    problem = json_problem({"reason": reason, "content": content, "arguments": arguments})
    if problem:
        raise InvalidReviewInput(f"Cannot store this decision: {problem}.")
    if choice != Choice.EDIT and (arguments is not None or content is not None):
        raise InvalidReviewInput(
            "Only an edit carries arguments or content.",
            field_errors={"choice": ["Use choice 'edit' to change arguments or content."]},
        )
    now = timezone.now()
    with transaction.atomic():
        review = lock_review(review_id)
        if opened_at is not None:
            # The client's word on when the screen opened feeds "time spent", the quality
            # checks and the rubber-stamp signal: it cannot predate the review or pass now.
            opened_at = min(max(opened_at, review.created_at), now)
        state_before = review.state
        # The same guard decides what the screens offer: what is offered is what passes.
        # Membership, ownership and grants are read now, under the review's lock.
        selectors.choice_verdict(
            review=review, user=reviewer, choice=choice, reason=reason
        ).raise_if_refused()

        final_arguments, final_content, diff = review.arguments, review.content, ""
        if choice == Choice.EDIT:
            final_arguments, final_content, diff = _apply_edit(review, arguments, content)
            if final_arguments != review.arguments:
                _revalidate_edit(review, final_arguments)
                # The edited amount must be within the reviewer's limit too.
                refusal = selectors.authority_refusal(
                    review=review, user=reviewer, arguments=final_arguments
                )
                if refusal:
                    raise NotAuthorized(refusal)

        partial = False
        if choice == Choice.APPROVE and review.required_approvals > 1:
            approvers = _approvers_this_round(review)
            if reviewer.pk in approvers:
                raise DuplicateApproval(
                    "You already approved this review; it needs another reviewer's approval."
                )
            partial = len(approvers) + 1 < review.required_approvals
            count = len(approvers) + 1

        if partial:
            change_reason = f"approval {count} of {review.required_approvals}"
        else:
            move(review, selectors.TRANSITION_FOR_CHOICE[choice])
            change_reason = choice if not reason else f"{choice}: {reason}"
            if choice in EXECUTING_CHOICES:
                review.final_arguments = final_arguments
                review.final_content = final_content
            elif choice == Choice.GUIDE:
                review.final_content = reason
            if review.state in FINAL_STATES:
                review.decided_at = now
            if choice == Choice.ESCALATE:
                review.assignee = review.queue.escalation_owner or review.queue.owner
            elif choice == Choice.TAKE_OVER:
                review.assignee = reviewer
                # A person owns the case now: it no longer expires or reroutes by itself.
                review.expires_at = None
                review.next_reminder_at = None

        stamp(review, Actor.of_user(reviewer), change_reason)
        save_transition(review)
        decision = Decision.objects.create(
            review=review,
            reviewer=reviewer,
            choice=choice,
            reason=reason,
            edited_arguments=final_arguments if choice == Choice.EDIT else None,
            edited_content=final_content if choice == Choice.EDIT else None,
            diff=diff,
            state_before=state_before,
            state_after=review.state,
            opened_at=opened_at,
            decided_at=now,
        )
        refresh_run_status(review.run, Actor.of_user(reviewer), review)
        if not partial:
            if choice in EXECUTING_CHOICES:
                queue_executor_on_commit(review)
            webhook_queue(review=review, event="review.decided")
        _send_decided_on_commit(review.review_id, decision.pk)
    return decision


def _revalidate_edit(review: ReviewRequest, arguments: Mapping[str, Any]) -> None:
    # An edit is a new proposal under the reviewer's name: the schema and the policy must
    # still accept it (the authority check then applies to the edited amount).
    try:
        decision = evaluate_proposal(proposal=policy_input(review, arguments, None))
    except PolicyInputError as exc:
        raise InvalidReviewInput(
            f"The edited arguments are not valid: {exc.one_line()}",
            field_errors=exc.message_dict,
        ) from exc
    if decision.outcome == "deny":
        raise NotAuthorized(
            f"The policy denies the edited action ({decision.rule}): {decision.explanation}"
        )
    if decision.outcome != "human_review":
        return
    # The edited action must not need a stronger review than the proposal got: another
    # queue, another kind or more approvers means it is not this reviewer's to let through.
    action_type = action_type_for(review.action_name)
    default_kind = action_type.default_review_kind if action_type else review.kind
    kind = decision.review_kind or default_kind
    queue = decision.queue or default_queue()
    routed = review.policy.get("outcome") == "human_review" if review.policy else False
    was_kind = (review.policy.get("review_kind") or default_kind) if routed else review.kind
    was_queue = (review.policy.get("queue") or default_queue()) if routed else queue
    if (
        kind != was_kind
        or queue != was_queue
        or decision.required_approvals > review.required_approvals
    ):
        raise NotAuthorized(
            f"The edited action needs its own review ({kind} in {queue}, "
            f"{decision.required_approvals} approver(s), rule {decision.rule}); "
            "escalate or reject instead."
        )


def _apply_edit(
    review: ReviewRequest,
    arguments: Mapping[str, Any] | None,
    content: str | None,
) -> tuple[dict, str, str]:
    if arguments is None and content is None:
        raise InvalidReviewInput(
            "An edit needs new arguments or new content.",
            field_errors={"arguments": ["Give the corrected arguments or content."]},
        )
    if arguments is not None and not isinstance(arguments, Mapping):
        raise InvalidReviewInput(
            "arguments must be a JSON object.",
            field_errors={"arguments": ["Must be a JSON object."]},
        )
    if content is not None and not isinstance(content, str):
        raise InvalidReviewInput(
            "content must be text.", field_errors={"content": ["Must be text."]}
        )
    if review.kind == ReviewKind.EDIT and content is None:
        raise InvalidReviewInput(
            "An edit review is corrected through its content.",
            field_errors={"content": ["Give the corrected content."]},
        )
    final_arguments = dict(arguments) if arguments is not None else dict(review.arguments)
    final_content = content if content is not None else review.content
    if final_arguments == review.arguments and final_content == review.content:
        raise InvalidReviewInput(
            "The edit changes nothing; approve the proposal as it is instead.",
            field_errors={"content": ["Nothing was changed."]},
        )
    return final_arguments, final_content, _diff(review, final_arguments, final_content)


def _diff(review: ReviewRequest, arguments: dict, content: str) -> str:
    parts = []
    if arguments != review.arguments:
        before = json.dumps(review.arguments, indent=2, sort_keys=True, default=str)
        after = json.dumps(arguments, indent=2, sort_keys=True, default=str)
        parts.extend(
            difflib.unified_diff(
                before.splitlines(), after.splitlines(), "proposed arguments", "edited", lineterm=""
            )
        )
    if content != review.content:
        parts.extend(
            difflib.unified_diff(
                review.content.splitlines(),
                content.splitlines(),
                "proposed content",
                "edited",
                lineterm="",
            )
        )
    return "\n".join(parts)


def _approvers_this_round(review: ReviewRequest) -> set[int]:
    # Approvals count until any other decision (a question, an escalation) resets the round.
    approvers: set[int] = set()
    for choice, reviewer_id in review.decisions.order_by("decided_at", "id").values_list(
        "choice", "reviewer_id"
    ):
        if choice == Choice.APPROVE:
            approvers.add(reviewer_id)
        else:
            approvers.clear()
    return approvers


# --- the agent's side and the system's --------------------------------------------------


def review_supply_evidence(
    *,
    review_id: str,
    actor: Actor,
    evidence: Iterable[Mapping[str, Any]],
    note: str = "",
) -> ReviewRequest:
    """The agent answers a request for more evidence; the review goes back to pending."""
    errors: dict[str, list[str]] = {}
    rows = _clean_evidence(evidence, errors)
    if not rows and "evidence" not in errors:
        errors["evidence"] = ["Supply at least one piece of evidence."]
    if errors:
        raise InvalidReviewInput(summarise(errors), field_errors=errors)
    now = timezone.now()
    with transaction.atomic():
        review = lock_review(review_id)
        check_agent_owns(review, actor)
        if review.state in FINAL_STATES:
            raise AlreadyDecided(f"This review is already {review.get_state_display().lower()}.")
        if review.is_past_expiry():
            raise ReviewExpired("This review has expired; evidence can no longer be added.")
        if review.state != ReviewState.AWAITING_EVIDENCE:
            raise TransitionNotAllowed("Nobody asked for more evidence on this review.")
        existing = {e.evidence_id: e for e in review.evidence.all()}
        position = max((e.position for e in existing.values()), default=-1) + 1
        for row in rows:
            item = existing.get(row["evidence_id"])
            if item is None:
                item = Evidence(review=review, position=position)
                position += 1
            for field, value in row.items():
                setattr(item, field, value)
            item.supplied_at = now
            stamp(item, actor, "supplied on request")
            item.save()
        move(review, "supply_evidence")
        stamp(review, actor, f"evidence supplied: {note}" if note else "evidence supplied")
        save_transition(review)
        refresh_run_status(review.run, actor, review)
    return review


def review_cancel(*, review_id: str, actor: Actor, reason: str) -> ReviewRequest:
    """The agent withdraws its proposal; the review closes without a decision."""
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired(
            "A reason is required to cancel.", field_errors={"reason": ["Say why."]}
        )
    with transaction.atomic():
        review = lock_review(review_id)
        check_agent_owns(review, actor)
        if review.state in FINAL_STATES:
            raise AlreadyDecided(f"This review is already {review.get_state_display().lower()}.")
        move(review, "cancel")
        review.decided_at = timezone.now()
        stamp(review, actor, f"cancelled: {reason}")
        save_transition(review)
        refresh_run_status(review.run, actor, review)
    return review


def review_expire(
    *,
    review_id: str,
    actor: Actor | None = None,
    reason: str = "expired: past expires_at",
) -> ReviewRequest:
    """Close a review that nobody decided in time; it never executes."""
    actor = actor or Actor.system("expiry")
    with transaction.atomic():
        review = lock_review(review_id)
        if review.state in FINAL_STATES:
            raise AlreadyDecided(f"This review is already {review.get_state_display().lower()}.")
        if not review.is_past_expiry():
            raise TransitionNotAllowed("This review has not reached its expiry time.")
        move(review, "expire")
        review.decided_at = timezone.now()
        # One review expired on its own applies no queue behaviour (no reroute): the agent
        # is told it was cancelled, whatever the queue would have done in the sweep.
        review.expiry_action = ExpiryBehaviour.CANCEL
        stamp(review, actor, reason)
        save_transition(review)
        refresh_run_status(review.run, actor, review)
        webhook_queue(review=review, event="review.expired")
    return review


# --- helpers ----------------------------------------------------------------------------


def _send_decided_on_commit(review_id: str, decision_id: int) -> None:
    def send() -> None:
        for receiver, result in review_decided.send_robust(
            sender=ReviewRequest, review_id=review_id, decision_id=decision_id
        ):
            if isinstance(result, Exception):
                logger.error(
                    "review_decided receiver %r failed for %s",
                    receiver,
                    review_id,
                    exc_info=result,
                )

    transaction.on_commit(send)


def _enum_value(enum, value: Any, field: str, errors: dict[str, list[str]]) -> str:
    if value in enum.values:
        return enum(value).value
    allowed = ", ".join(enum.values)
    errors.setdefault(field, []).append(f"'{value}' is not one of: {allowed}.")
    return ""


def _validate_choices(
    kind: str, choices: Iterable[str] | None, errors: dict[str, list[str]]
) -> list[str]:
    if not kind:
        return []
    defaults = [c.value for c in CHOICES_BY_KIND[ReviewKind(kind)]]
    if choices is None:
        return defaults
    values = list(choices)
    # An approval may also offer argument edits when the policy allows them.
    possible = set(defaults) | ({Choice.EDIT.value} if kind == ReviewKind.APPROVAL else set())
    wrong = [c for c in values if c not in possible]
    if wrong:
        errors.setdefault("choices", []).append(
            f"not offered for a {kind} review: {', '.join(map(str, wrong))}."
        )
    if not values:
        errors.setdefault("choices", []).append("offer at least one choice.")
    return list(dict.fromkeys(values))


def _clean_evidence(
    rows: Iterable[Mapping[str, Any]], errors: dict[str, list[str]]
) -> list[dict[str, Any]]:
    cleaned: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        prefix = f"evidence[{index}]"
        if not isinstance(row, Mapping):
            errors.setdefault(prefix, []).append("must be an object.")
            continue
        evidence_id = str(row.get("id") or row.get("evidence_id") or "").strip()
        fresh_until = row.get("fresh_until")
        if isinstance(fresh_until, str):
            parsed = parse_datetime(fresh_until)
            if parsed is None:
                errors.setdefault(f"{prefix}.fresh_until", []).append(
                    "must be an ISO 8601 date-time."
                )
            elif timezone.is_naive(parsed):
                errors.setdefault(f"{prefix}.fresh_until", []).append("must include a timezone.")
            fresh_until = parsed
        item = {
            "evidence_id": evidence_id,
            "title": str(row.get("title") or "").strip(),
            "url": str(row.get("url") or "").strip(),
            "excerpt": str(row.get("excerpt") or ""),
            "fresh_until": fresh_until if isinstance(fresh_until, datetime) else None,
        }
        if evidence_id in seen:
            errors.setdefault(f"{prefix}.id", []).append(f"duplicate evidence id {evidence_id}.")
        seen.add(evidence_id)
        try:
            Evidence(**item).full_clean(exclude=["review"])
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                name = "id" if field == "evidence_id" else field
                errors.setdefault(f"{prefix}.{name}", []).extend(messages)
        cleaned.append(item)
    return cleaned


def _clean_resources(
    rows: Iterable[Mapping[str, Any]], errors: dict[str, list[str]]
) -> list[dict[str, str]]:
    cleaned = []
    for index, row in enumerate(rows):
        prefix = f"affected_resources[{index}]"
        if not isinstance(row, Mapping):
            errors.setdefault(prefix, []).append("must be an object with type, id and version.")
            continue
        missing = [k for k in ("type", "id") if not str(row.get(k, "")).strip()]
        if missing:
            errors.setdefault(prefix, []).append(f"missing {', '.join(missing)}.")
        version = row.get("version")
        cleaned.append(
            {
                "type": str(row.get("type", "")),
                "id": str(row.get("id", "")),
                "version": None if version is None else str(version),
            }
        )
    return cleaned


def review_assign(
    *,
    review_id: str,
    actor: AbstractBaseUser,
    assignee: AbstractBaseUser | None,
) -> ReviewRequest:
    """Claim an open review (assignee = actor), or, for the queue's owner, hand it to a
    member; None unassigns. Assignment says who works it, not who may decide it."""
    with transaction.atomic():
        review = lock_review(review_id)
        if review.state in FINAL_STATES:
            raise AlreadyDecided(f"This review is already {review.get_state_display().lower()}.")
        queue = review.queue
        is_lead = actor.is_superuser or actor.pk == queue.owner_id
        if assignee is not None and assignee.pk == actor.pk:
            if not selectors.can_decide(user=actor, review=review):
                raise NotAuthorized("You can only claim reviews of your own queues.")
        elif not is_lead and not (assignee is None and review.assignee_id == actor.pk):
            raise NotAuthorized("Only the queue's owner assigns reviews to others.")
        if assignee is not None and assignee.pk != actor.pk:
            works_here = assignee.is_active and (
                assignee.pk == queue.owner_id or queue.members.filter(pk=assignee.pk).exists()
            )
            if not works_here:
                raise InvalidReviewInput(
                    f"{assignee.get_username()} is not a member of {queue.name}.",
                    field_errors={"assignee": ["Not a member of this queue."]},
                )
        if (assignee.pk if assignee else None) == review.assignee_id:
            return review
        review.assignee = assignee
        who = assignee.get_username() if assignee else "nobody"
        stamp(review, Actor.of_user(actor), f"assigned to {who}")
        save_transition(review)
    return review


def queue_save(*, actor: AbstractBaseUser, queue: Queue) -> Queue:
    """Create or change a queue's settings, validated (no fallback loops) and audited."""
    with transaction.atomic():
        if queue.pk is not None:
            stored = for_update(Queue.objects.all()).filter(pk=queue.pk).first()
            if stored is not None and stored.tenant != queue.tenant:
                # Its reviews, and every queue falling back to it, would change tenant.
                raise InvalidReviewInput(
                    "A queue's tenant never changes; create a queue in the other tenant.",
                    field_errors={"tenant": ["Set when the queue is created; it never changes."]},
                )
        try:
            queue.full_clean()
        except ValidationError as exc:
            raise InvalidReviewInput(
                summarise(exc.message_dict), field_errors=exc.message_dict
            ) from exc
        stamp(queue, Actor.of_user(actor), "settings changed" if queue.pk else "created")
        queue.save()
    return queue
