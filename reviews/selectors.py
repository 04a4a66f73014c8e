"""Reads shared by the admin screens, the API and the services."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from policies.selectors import action_type_for

from .models import Choice, Decision, Execution, ExecutionState, Queue, ReviewRequest, ReviewState


def queues_for(*, user: AbstractBaseUser) -> QuerySet[Queue]:
    """The queues a person works in or owns (all of them for a superuser)."""
    if user.is_superuser:
        return Queue.objects.all()
    return Queue.objects.filter(
        Q(members=user) | Q(owner=user) | Q(escalation_owner=user)
    ).distinct()


def reviews_visible_to(
    *, user: AbstractBaseUser, queryset: QuerySet[ReviewRequest] | None = None
) -> QuerySet[ReviewRequest]:
    """Reviews of the queues a person works in or owns, plus those assigned to them."""
    qs = ReviewRequest.objects.all() if queryset is None else queryset
    if not user.is_active:
        return qs.none()
    if user.is_superuser:
        return qs
    queue_ids = queues_for(user=user).values("pk")
    return qs.filter(Q(queue__in=queue_ids) | Q(assignee=user))


def can_decide(*, user: AbstractBaseUser, review: ReviewRequest) -> bool:
    """Whether this person may decide this review, before any authority limit applies."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    queue = review.queue
    if review.state == ReviewState.ESCALATED:
        # Once escalated, ownership has moved: only the owner of the escalation decides.
        return user.pk in {review.assignee_id, queue.escalation_owner_id, queue.owner_id}
    if user.pk == queue.owner_id or review.assignee_id == user.pk:
        return True
    return queue.members.filter(pk=user.pk).exists()


def resume_instruction(review: ReviewRequest) -> dict:
    """What the agent should do next about this review, in terms a program can act on."""
    state = review.state
    last = _last_decision(review)
    reason = last.reason if last else ""
    if state == ReviewState.PENDING:
        return {"action": "wait", "detail": "waiting for a reviewer"}
    if state == ReviewState.ESCALATED:
        owner = review.assignee.get_username() if review.assignee_id else review.queue.slug
        return {"action": "handed_over", "to": owner, "reason": reason}
    if state == ReviewState.AWAITING_EVIDENCE:
        return {"action": "supply_evidence", "question": reason}
    if state == ReviewState.REJECTED:
        return {"action": "stop", "reason": reason}
    if state == ReviewState.CANCELLED:
        return {"action": "cancelled"}
    if state == ReviewState.EXPIRED:
        return {
            "action": "expired",
            "what_happened": review.queue.get_expiry_behaviour_display(),
            "expiry_behaviour": review.queue.expiry_behaviour,
        }
    if state == ReviewState.EDITED and last is not None and last.choice == Choice.GUIDE:
        return {"action": "continue_with_guidance", "guidance": review.final_content}
    execution = review.execution if _has_execution(review) else None
    if execution is not None:
        return {
            "action": {
                ExecutionState.CLAIMED: "executing",
                ExecutionState.SUCCEEDED: "done",
                ExecutionState.FAILED: "execution_failed",
                ExecutionState.BLOCKED_STALE: "blocked",
            }[execution.state],
            "execution": execution_summary(execution),
        }
    action_type = action_type_for(review.action_name)
    if action_type is not None and action_type.executor:
        return {"action": "executing", "detail": "the platform runs this action"}
    instruction = {
        "action": "execute" if state == ReviewState.APPROVED else "continue_with_edits",
        "arguments": review.final_arguments,
        "claim": f"/api/v1/reviews/{review.review_id}/execution/claim/",
    }
    if state == ReviewState.EDITED:
        instruction["content"] = review.final_content
        instruction["reason"] = reason
    return instruction


def execution_summary(execution: Execution) -> dict:
    """The public view of an execution."""
    return {
        "state": execution.state,
        "mode": execution.mode,
        "idempotency_key": execution.idempotency_key,
        "claimed_by": execution.claimed_by,
        "claimed_at": execution.claimed_at,
        "finished_at": execution.finished_at,
        "arguments": execution.arguments,
        "result": execution.result,
        "error": execution.error,
        "blocked_reasons": execution.blocked_reasons,
    }


def _has_execution(review: ReviewRequest) -> bool:
    try:
        review.execution  # noqa: B018 - the one-to-one raises when there is none
    except Execution.DoesNotExist:
        return False
    return True


def _last_decision(review: ReviewRequest) -> Decision | None:
    decisions = getattr(review, "_prefetched_objects_cache", {}).get("decisions")
    if decisions is not None:
        return list(decisions)[-1] if decisions else None
    return review.decisions.order_by("-decided_at", "-id").first()
