"""Execution of decided reviews: re-validated first, then exactly once.

Both paths, a registered executor run by the worker and an agent that claims the action
itself, go through `execution_claim`: the review row is locked, the review's single
`Execution` row (a one-to-one) is created or found, so a second claim, a retried task or
a duplicated delivery finds it and never runs the action again.
"""

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, NoReturn

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_fsm import TransitionNotAllowed as FSMTransitionNotAllowed

from hitl.db import for_update
from hitl.kernel import Actor
from hitl.tasks import enqueue
from policies.selectors import action_type_for

from .. import selectors
from ..choices import spec_for
from ..exceptions import (
    AlreadyClaimed,
    ClaimInputMissing,
    FactsUnavailable,
    InvalidReviewInput,
    NotAuthorized,
    NotExecutable,
)
from ..models import (
    Execution,
    ExecutionMode,
    ExecutionState,
    ExpiryBehaviour,
    ReviewRequest,
    ReviewState,
)
from ._common import check_agent_owns, lock_review, stamp
from .rechecks import fresh_state, stale_checks
from .webhooks import webhook_queue

logger = logging.getLogger(__name__)

EXECUTOR_ACTOR = Actor.system("executor")
RECONCILE_ACTOR = Actor.system("reconcile")


def execution_claim(
    *,
    review_id: str,
    actor: Actor,
    mode: str = ExecutionMode.AGENT,
    facts: Mapping[str, Any] | None = None,
    resources: Iterable[Mapping[str, Any]] | None = None,
) -> Execution:
    """Claim the one execution of a decided review after re-checking it is still valid.
    A stale review gets a blocked execution with the reasons; it never runs. A claim that
    lacks what must be checked is refused and consumes nothing."""
    unlocked = (
        ReviewRequest.objects.select_related("run", "queue", "assignee", "rerouted_to")
        .filter(review_id=review_id)
        .first()
    )
    action_type = action_type_for(unlocked.action_name) if unlocked else None
    if mode == ExecutionMode.AGENT and action_type is not None and action_type.executor:
        _refuse_platform_run(unlocked, actor)
    trusted_resources = False
    if unlocked is not None and action_type is not None and action_type.fact_provider:
        facts, resources, trusted_resources = _with_fresh_state(unlocked, facts, resources)
    with transaction.atomic():
        review = lock_review(review_id)
        _refuse_unless_claimable(review, actor, mode)
        if mode == ExecutionMode.AGENT and not trusted_resources:
            # Only the claimant can supply these: refuse before anything is written, so the
            # same claim with the versions succeeds (a block would be final).
            _refuse_missing_versions(review, resources)
        checks = stale_checks(review=review, facts=facts, resources=resources)
        execution = _new_execution(review, actor, mode, checks)
        execution.save()
        if checks:
            _announce_blocked(review, execution)
    return execution


def _refuse_platform_run(review: ReviewRequest, actor: Actor) -> NoReturn:
    # Read-only answer: say what the review's state is before "wait for the platform",
    # which is only true of a review the platform is about to run.
    _refuse_unless_claimable(review, actor, ExecutionMode.AGENT)
    raise NotExecutable(
        "The platform runs this action itself (a registered executor); do not run it. "
        "Wait for the outcome: the execution.* webhook, or GET this review until "
        "resume.action is done, execution_failed or blocked.",
        code="runs_on_platform",
        extra=_state_extra(review),
    )


def _refuse_unless_claimable(review: ReviewRequest, actor: Actor, mode: str) -> None:
    if mode == ExecutionMode.AGENT:
        check_agent_owns(review, actor)
    refuse_unless_executable(review)
    existing = Execution.objects.filter(review=review).first()
    if existing is not None:
        raise _already_claimed(review, existing)


def _with_fresh_state(
    review: ReviewRequest,
    facts: Mapping[str, Any] | None,
    resources: Iterable[Mapping[str, Any]] | None,
) -> tuple[dict[str, Any], Iterable[Mapping[str, Any]] | None, bool]:
    # Trusted facts win: what the claimant says never overrides the provider's answer.
    try:
        fresh = fresh_state(review=review)
    except Exception as exc:
        # Whatever the provider raised: without fresh facts nothing may run. Its message
        # may carry the provider's internals, so it goes to the log, not to the agent.
        logger.exception("The fact provider failed for %s", review.review_id)
        raise FactsUnavailable(
            f"The trusted facts for {review.action_name} could not be read "
            f"({type(exc).__name__}); nothing was claimed. Try again later.",
            extra={"review_id": review.review_id},
        ) from exc
    facts = {**dict(facts or {}), **(fresh.get("facts") or {})}
    if fresh.get("resources") is None:
        return facts, resources, False
    return facts, fresh["resources"], True


def execution_block(*, review_id: str, actor: Actor, checks: list[dict[str, str]]) -> Execution:
    """Close a decided review's execution as blocked without running it (the platform
    could not establish that it is still valid); refused like a claim once claimed."""
    with transaction.atomic():
        review = lock_review(review_id)
        _refuse_unless_claimable(review, actor, ExecutionMode.EXECUTOR)
        execution = _new_execution(review, actor, ExecutionMode.EXECUTOR, checks)
        execution.save()
        _announce_blocked(review, execution)
    return execution


def _new_execution(
    review: ReviewRequest, actor: Actor, mode: str, checks: list[dict[str, str]]
) -> Execution:
    now = timezone.now()
    fields = {
        "review": review,
        "mode": mode,
        "idempotency_key": f"exec_{review.review_id}",
        "claimed_by": actor.label,
        "claimed_at": now,
        "arguments": review.final_arguments or {},
        "content": review.final_content or "",
    }
    if not checks:
        execution = Execution(**fields)
        stamp(execution, actor, f"claimed by {actor.label}")
        return execution
    reasons = [check["detail"] for check in checks]
    execution = Execution(
        **fields,
        state=ExecutionState.BLOCKED_STALE,
        finished_at=now,
        blocked_reasons=reasons,
        blocked_checks=checks,
    )
    stamp(execution, actor, "blocked: " + "; ".join(reasons))
    return execution


def _announce_blocked(review: ReviewRequest, execution: Execution) -> None:
    webhook_queue(
        review=review,
        event="execution.blocked",
        data={
            "state": review.state,
            "reasons": execution.blocked_reasons,
            "checks": execution.blocked_checks,
            "next": selectors.blocked_next_step(execution),
            "resume": selectors.resume_instruction(review),
        },
    )


def refuse_unless_executable(review: ReviewRequest) -> None:
    """Raise NotExecutable with the review's actual situation (rejected and why, still
    pending, expired, ...) unless it is approved or edited for execution."""
    last = review.decisions.select_related("reviewer").order_by("-decided_at", "-id").first()
    if review.state in (ReviewState.APPROVED, ReviewState.EDITED):
        if last is None or not spec_for(last.choice).executes:
            raise NotExecutable(
                "The reviewer gave guidance instead of approving; the agent re-plans with it "
                "and nothing of this proposal executes.",
                code="review_guided",
                extra=_state_extra(review),
            )
        return
    who = last.reviewer.get_username() if last is not None else "a reviewer"
    reason = (last.reason or "").strip() if last is not None else ""
    refusal = _REFUSALS.get(review.state)
    if refusal is None:
        code = "not_executable"
        message = f"Only an approved or edited review executes; this one is {review.state}."
    else:
        code, explain = refusal
        message = explain(review, who, reason)
    raise NotExecutable(message, code=code, extra=_state_extra(review))


_CLAIM_AFTER = "Claim only once it is approved."


def _rejected(review: ReviewRequest, who: str, reason: str) -> str:
    return (
        f"This review was rejected by {who}"
        + (f": {reason}" if reason else " (no reason given)")
        + ". Nothing of it executes: stop, or re-plan with that reason."
    )


def _expired(review: ReviewRequest, who: str, reason: str) -> str:
    behaviour = review.expiry_action or review.queue.expiry_behaviour
    when = f" at {review.expires_at.isoformat()}" if review.expires_at else ""
    message = (
        f"This review expired{when} before anyone decided it "
        f"({ExpiryBehaviour(behaviour).label.lower()}); an expired review never executes."
    )
    if review.rerouted_to_id:
        return message + (
            f" It continues as review {review.rerouted_to.review_id}: claim that one "
            "once it is approved."
        )
    return message + " Propose the action again if it is still needed."


def _cancelled(review: ReviewRequest, who: str, reason: str) -> str:
    return (
        "This review was cancelled (its agent withdrew the proposal); it never executes. "
        "Propose the action again if it is needed after all."
    )


def _pending(review: ReviewRequest, who: str, reason: str) -> str:
    message = f"No decision yet: the review waits for a reviewer in queue {review.queue.slug}."
    if review.required_approvals > 1:
        message += f" It needs {review.required_approvals} different approvers."
    return message + (
        f" Wait for the review.decided webhook or GET /api/v1/reviews/{review.review_id}/"
        f". {_CLAIM_AFTER}"
    )


def _awaiting_evidence(review: ReviewRequest, who: str, reason: str) -> str:
    return (
        f"No decision yet: {who} asked for more evidence"
        + (f' ("{reason}")' if reason else "")
        + f". Answer with POST /api/v1/reviews/{review.review_id}/evidence/; the review "
        f"then goes back to the reviewers. {_CLAIM_AFTER}"
    )


def _escalated(review: ReviewRequest, who: str, reason: str) -> str:
    owner = review.assignee.get_username() if review.assignee_id else review.queue.slug
    return (
        f"No decision yet: the review was escalated to {owner}"
        + (f" ({reason})" if reason else "")
        + f" and waits for their decision. {_CLAIM_AFTER}"
    )


# For each state that cannot be claimed: the refusal's code and its explanation.
_REFUSALS: dict[str, tuple[str, Callable[[ReviewRequest, str, str], str]]] = {
    ReviewState.REJECTED: ("review_rejected", _rejected),
    ReviewState.EXPIRED: ("review_expired", _expired),
    ReviewState.CANCELLED: ("review_cancelled", _cancelled),
    ReviewState.PENDING: ("review_pending", _pending),
    ReviewState.AWAITING_EVIDENCE: ("review_awaiting_evidence", _awaiting_evidence),
    ReviewState.ESCALATED: ("review_escalated", _escalated),
}


def _state_extra(review: ReviewRequest) -> dict[str, Any]:
    return {"state": review.state, "resume": selectors.resume_instruction(review)}


def _already_claimed(review: ReviewRequest, execution: Execution) -> AlreadyClaimed:
    if execution.state == ExecutionState.BLOCKED_STALE:
        step = selectors.blocked_next_step(execution) or {}
        message = (
            f"This review's execution was blocked when {execution.claimed_by} claimed it, "
            f"because {'; '.join(execution.blocked_reasons)}. It never runs. "
            f"{step.get('detail', '')}"
        ).strip()
    else:
        message = (
            f"This review's execution was claimed by {execution.claimed_by} and is "
            f"{execution.state}; it never runs twice."
        )
    return AlreadyClaimed(
        message,
        extra={
            "state": review.state,
            "execution": selectors.execution_summary(execution),
            "resume": selectors.resume_instruction(review),
        },
    )


def _refuse_missing_versions(
    review: ReviewRequest, resources: Iterable[Mapping[str, Any]] | None
) -> None:
    given = {
        (str(r.get("type")), str(r.get("id")))
        for r in (resources or [])
        if isinstance(r, Mapping) and r.get("version") not in (None, "")
    }
    required = selectors.claim_requirements(review)
    missing = [r for r in required if (r["type"], r["id"]) not in given]
    if not missing:
        return
    names = ", ".join(
        f"{r['type']} {r['id']} (version {r['reviewed_version']} was reviewed)" for r in missing
    )
    example = json.dumps(
        {
            "affected_resources": [
                {"type": r["type"], "id": r["id"], "version": "<its current version>"}
                for r in required
            ]
        }
    )
    raise ClaimInputMissing(
        "Nothing was claimed: before this action runs the platform checks that the "
        f"affected resources are unchanged, and the claim lacks the current version of "
        f"{names}. Read them from their system and claim again with {example}.",
        field_errors={
            "affected_resources": [
                f"{r['type']} {r['id']}: send its current version "
                f"(version {r['reviewed_version']} was reviewed)."
                for r in missing
            ]
        },
        extra={"required": {"affected_resources": missing}},
    )


def execution_report(
    *,
    review_id: str,
    actor: Actor,
    succeeded: bool,
    result: Any = None,
    error: str = "",
) -> Execution:
    """Record how a claimed execution ended; only its claimant may, and only once."""
    with transaction.atomic():
        execution = (
            for_update(Execution.objects.all(), of=("self",))
            .select_related("review", "review__run", "review__run__agent")
            .filter(review__review_id=review_id)
            .first()
        )
        if execution is None:
            raise NotExecutable("Nothing was claimed for this review; claim it first.")
        if actor.label != execution.claimed_by and not (actor.user and actor.user.is_superuser):
            raise NotAuthorized("Only the claimant reports the outcome of an execution.")
        try:
            execution.succeed() if succeeded else execution.fail()
        except FSMTransitionNotAllowed:
            raise AlreadyClaimed(
                f"This execution is already {execution.state}; its outcome was reported."
            ) from None
        execution.finished_at = timezone.now()
        execution.result = _json_safe(result)
        execution.error = (error or "")[:5000]
        stamp(execution, actor, "succeeded" if succeeded else f"failed: {error}"[:500])
        execution.save()
        webhook_queue(
            review=execution.review,
            event="execution.succeeded" if succeeded else "execution.failed",
            data={"result": execution.result, "error": execution.error},
        )
    return execution


def execution_run_executor(*, review_id: str) -> Execution | None:
    """The worker's path: claim, run the action type's registered executor, report.
    Returns None when there is no executor or the execution was claimed before."""
    review = ReviewRequest.objects.filter(review_id=review_id).first()
    if review is None:
        raise InvalidReviewInput(f"No review {review_id}.")
    action_type = action_type_for(review.action_name)
    if action_type is None or not action_type.executor:
        return None
    try:
        execution = execution_claim(
            review_id=review_id, actor=EXECUTOR_ACTOR, mode=ExecutionMode.EXECUTOR
        )
    except AlreadyClaimed:
        logger.info("Execution of %s was already claimed; not running it again", review_id)
        return None
    if execution.state == ExecutionState.BLOCKED_STALE:
        return execution
    return _run_executor(execution)


def _run_executor(execution: Execution) -> Execution | None:
    review = execution.review
    action_type = action_type_for(review.action_name)
    if action_type is None or not action_type.executor:
        return None
    try:
        executor = import_string(action_type.executor)
        result = executor(
            arguments=execution.arguments,
            content=execution.content,
            idempotency_key=execution.idempotency_key,
            review_id=review.review_id,
        )
    except Exception as exc:
        logger.exception("Executor of %s failed", review.review_id)
        return execution_report(
            review_id=review.review_id, actor=EXECUTOR_ACTOR, succeeded=False, error=repr(exc)
        )
    return execution_report(
        review_id=review.review_id, actor=EXECUTOR_ACTOR, succeeded=True, result=result
    )


def queue_executor_on_commit(review: ReviewRequest) -> None:
    """After an approval commits, run the registered executor in the worker, if any."""
    action_type = action_type_for(review.action_name)
    if action_type is None or not action_type.executor:
        return
    review_id = review.review_id

    def execute_later() -> None:
        enqueue("reviews.tasks.execute_review", review_id, task_name=f"execute-{review_id}")

    transaction.on_commit(execute_later)


def _json_safe(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    except (TypeError, ValueError):
        return {"repr": repr(value)}


def execution_reconcile(*, stale_after: timedelta = timedelta(minutes=5)) -> int:
    """Finish executor runs left `claimed` by a worker that died mid-way: run the executor
    again with the same idempotency key (the downstream system deduplicates on it) and
    record the outcome. Returns how many it finished."""
    cutoff = timezone.now() - stale_after
    finished = 0
    stale = Execution.objects.filter(
        state=ExecutionState.CLAIMED, mode=ExecutionMode.EXECUTOR, claimed_at__lt=cutoff
    ).values_list("pk", flat=True)
    for pk in list(stale):
        with transaction.atomic(durable=True):
            execution = (
                for_update(Execution.objects.all(), skip_locked=True)
                .select_related("review")
                .filter(pk=pk, state=ExecutionState.CLAIMED, claimed_at__lt=cutoff)
                .first()
            )
            if execution is None:
                continue
            # Take it over so a second reconciler leaves it alone while this one runs it.
            execution.claimed_at = timezone.now()
            stamp(execution, RECONCILE_ACTOR, "reconciling a claim left by a dead worker")
            execution.save(update_fields=["claimed_at"])
        finished += _run_executor(execution) is not None
    return finished
