"""A review as a packet: what the screens, the API and the run detail show of it."""

from django.db.models import Prefetch, QuerySet

from hitl.internals import prefetched
from policies.selectors import action_type_for

from ..choices import SPECS, spec_for
from ..models import (
    Decision,
    Execution,
    ExecutionState,
    ExpiryBehaviour,
    ReviewRequest,
    ReviewState,
)


def packet_queryset() -> QuerySet[ReviewRequest]:
    """Reviews with everything a packet shows (the admin screen, the API packet, the run
    detail), in a fixed number of queries whatever the number of reviews."""
    return ReviewRequest.objects.select_related(
        "run__agent", "queue", "assignee", "execution"
    ).prefetch_related(
        "evidence",
        Prefetch("decisions", queryset=Decision.objects.select_related("reviewer")),
    )


def resume_instruction(review: ReviewRequest) -> dict:
    """What the agent should do next about this review, in terms a program can act on."""
    state = review.state
    last = last_decision(review)
    reason = last.reason if last else ""
    if state == ReviewState.PENDING:
        return {"action": "wait", "detail": "waiting for a reviewer"}
    if state == ReviewState.ESCALATED:
        owner = review.assignee.get_username() if review.assignee_id else review.queue.slug
        return {"action": "handed_over", "to": owner, "reason": reason}
    if state == ReviewState.AWAITING_EVIDENCE:
        return {"action": "supply_evidence", "question": reason}
    if state == ReviewState.CANCELLED:
        return {"action": "cancelled"}
    if state == ReviewState.EXPIRED:
        return _expired_instruction(review)
    spec = spec_for(last.choice) if last is not None else None
    if spec is not None and spec.resume is not None:
        # Closed by a choice that runs nothing (a rejection, guidance): the spec says what now.
        return spec.resume(review, last)
    if state not in (ReviewState.APPROVED, ReviewState.EDITED) or not (spec and spec.executes):
        # Closed without a choice that lets the action run: there is nothing to execute.
        return {"action": "stop", "reason": reason}
    execution = execution_of(review)
    if execution is not None:
        summary = execution_summary(execution)
        instruction = {
            "action": {
                ExecutionState.CLAIMED: "executing",
                ExecutionState.SUCCEEDED: "done",
                ExecutionState.FAILED: "execution_failed",
                ExecutionState.BLOCKED_STALE: "blocked",
            }[execution.state],
            "execution": summary,
        }
        if execution.state == ExecutionState.BLOCKED_STALE:
            # Why it did not run and what now, at the top where an agent looks first.
            instruction["reasons"] = summary["blocked_reasons"]
            instruction["checks"] = summary["blocked_checks"]
            instruction["next"] = summary["next_step"]
        return instruction
    action_type = action_type_for(review.action_name)
    if action_type is not None and action_type.executor:
        return {"action": "executing", "detail": "the platform runs this action"}
    instruction = {
        "action": "execute" if state == ReviewState.APPROVED else "continue_with_edits",
        "arguments": review.final_arguments,
        "claim": f"/api/v1/reviews/{review.review_id}/execution/claim/",
        # What the claim must carry; a claim without it is refused with a 400.
        "claim_requires": {"affected_resources": claim_requirements(review)},
    }
    if state == ReviewState.EDITED:
        instruction["content"] = review.final_content
        instruction["reason"] = reason
    return instruction


def _expired_instruction(review: ReviewRequest) -> dict:
    behaviour = review.expiry_action or review.queue.expiry_behaviour
    instruction = {
        "action": "expired",
        "expiry_behaviour": behaviour,
        "what_happened": ExpiryBehaviour(behaviour).label,
    }
    if review.rerouted_to_id:
        instruction["rerouted_to"] = review.rerouted_to.review_id
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
        "blocked_checks": blocked_checks(execution),
        "next_step": blocked_next_step(execution),
    }


def claim_requirements(review: ReviewRequest) -> list[dict]:
    """The affected resources whose current version an agent's claim must send (the
    reviewed versions are re-checked); none when a fact provider supplies them."""
    action_type = action_type_for(review.action_name)
    if action_type is not None and action_type.fact_provider:
        return []
    return [
        {"type": str(r["type"]), "id": str(r["id"]), "reviewed_version": str(r["version"])}
        for r in review.affected_resources or []
        if isinstance(r, dict) and r.get("version") not in (None, "")
    ]


def blocked_checks(execution: Execution) -> list[dict]:
    """Which re-checks failed, as {"check", "detail"}; empty unless blocked."""
    if execution.state != ExecutionState.BLOCKED_STALE:
        return []
    if execution.blocked_checks:
        return execution.blocked_checks
    # Blocked before the checks were named: the reasons are all there is.
    return [{"check": "stale", "detail": reason} for reason in execution.blocked_reasons]


# What an agent does about each failed check before it proposes again.
_REFRESH = {
    "resource_changed": "re-read the changed resources and decide whether the action still "
    "makes sense, then send their current versions",
    "resource_unconfirmed": "send the current versions of the affected resources",
    "evidence_stale": "attach fresh evidence",
    "expired": "the approval came too late to use",
    "authority_revoked": "the approving reviewer may no longer approve it, so someone who "
    "may decides anew",
}


def blocked_next_step(execution: Execution) -> dict | None:
    """What the agent does after a blocked execution (None unless blocked): the approval
    is used up, so it proposes again for a new review, or re-plans if the policy would
    now refuse the same proposal."""
    checks = {c["check"] for c in blocked_checks(execution)}
    if not checks:
        return None
    if checks & {"policy_denies", "arguments_invalid"}:
        return {
            "action": "replan",
            "detail": "The policy no longer allows this action as it was approved, so "
            "proposing it unchanged would be refused: re-plan with these reasons, or stop.",
        }
    todo = [text for check, text in _REFRESH.items() if check in checks]
    return {
        "action": "propose_again",
        "detail": "This approval can no longer be used and the action did not run. Propose "
        "it again (POST /api/v1/actions/, same run_id) to get a new review"
        + (": " + "; ".join(todo) if todo else "")
        + ".",
        "propose": "/api/v1/actions/",
    }


def execution_of(review: ReviewRequest) -> Execution | None:
    """The review's one execution, or None before anything was claimed."""
    try:
        return review.execution
    except Execution.DoesNotExist:
        return None


def last_decision(review: ReviewRequest) -> Decision | None:
    """The review's latest decision (read from the prefetched ones when they are loaded)."""
    decisions = prefetched(review, "decisions")
    if decisions is not None:
        return list(decisions)[-1] if decisions else None
    return review.decisions.order_by("-decided_at", "-id").first()


def choice_consequences(review: ReviewRequest) -> dict[str, str]:
    """What happens after each choice, in plain words, for the buttons' captions."""
    return {spec.value: spec.consequence(review) for spec in SPECS}
