"""Reads shared by the admin screens, the API and the services."""

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django_fsm import can_proceed

from policies.selectors import action_type_for

from ..models import (
    Choice,
    Decision,
    Execution,
    ExecutionState,
    ExpiryBehaviour,
    Queue,
    ReviewRequest,
    ReviewState,
)


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


def sees_whole_run(*, user: AbstractBaseUser, run) -> bool:
    """Whether every review of the run is visible to this person (then its checkpoint is)."""
    if user.is_superuser:
        return True
    total = run.reviews.count()
    return reviews_visible_to(user=user).filter(run=run).count() == total


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
        behaviour = review.expiry_action or review.queue.expiry_behaviour
        instruction = {
            "action": "expired",
            "expiry_behaviour": behaviour,
            "what_happened": ExpiryBehaviour(behaviour).label,
        }
        if review.rerouted_to_id:
            instruction["rerouted_to"] = review.rerouted_to.review_id
        return instruction
    if state == ReviewState.EDITED and last is not None and last.choice == Choice.GUIDE:
        return {"action": "continue_with_guidance", "guidance": review.final_content}
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


def _last_decision(review: ReviewRequest) -> Decision | None:
    decisions = getattr(review, "_prefetched_objects_cache", {}).get("decisions")
    if decisions is not None:
        return list(decisions)[-1] if decisions else None
    return review.decisions.order_by("-decided_at", "-id").first()


def available_choices(*, review: ReviewRequest, user: AbstractBaseUser) -> list[str]:
    """The choices this person may make on this review now; nothing that would be refused
    is offered (authority on the proposed amount is checked again when they decide)."""
    if review.state not in (ReviewState.PENDING, ReviewState.ESCALATED):
        return []
    if review.is_past_expiry() or not can_decide(user=user, review=review):
        return []
    if review.proposed_by_user_id is not None and review.proposed_by_user_id == user.pk:
        return []
    allowed = []
    taken_over = review.state == ReviewState.ESCALATED and review.assignee_id == user.pk
    for choice in review.choices:
        if choice == Choice.TAKE_OVER and taken_over:
            continue  # already theirs: what is left is to guide the agent or to end it
        transition = "edit" if choice == Choice.GUIDE else choice
        method = getattr(review, transition, None)
        if method is not None and can_proceed(method):
            allowed.append(choice)
    return allowed


def choice_consequences(review: ReviewRequest) -> dict[str, str]:
    """What happens after each choice, in plain words, for the buttons' captions."""
    queue = review.queue
    owner = queue.escalation_owner or queue.owner
    owner_name = owner.get_username() if owner else f"the {queue.name} queue"
    consequence = (review.consequence or f"run {review.action_name}").rstrip(".")
    executor = action_type_for(review.action_name)
    runs = (
        "the platform runs it at once"
        if executor is not None and executor.executor
        else "the agent is told to run it"
    )
    approvals = ""
    if review.required_approvals > 1:
        approvals = f" Needs {review.required_approvals} different approvers."
    return {
        Choice.APPROVE: (
            f"{consequence}: {runs}, after a last check that nothing went stale.{approvals}"
            if review.kind != "edit"
            else "The text is used exactly as the agent wrote it."
        ),
        Choice.EDIT: (
            "Your corrected text is used instead of the agent's; the change is kept as a diff."
            if review.kind == "edit"
            else "Your corrected arguments are re-checked by the policy and your authority, "
            "then run instead of the proposal."
        ),
        Choice.REJECT: "Nothing runs. The agent's run stops and it is told your reason.",
        Choice.REQUEST_MORE_EVIDENCE: (
            "The review waits for the agent to answer your question with evidence, then "
            "comes back to this queue."
        ),
        Choice.ESCALATE: f"Ownership moves to {owner_name}, who decides instead.",
        Choice.TAKE_OVER: (
            "You own the case from now on: the agent stops and is told a person took over."
        ),
        Choice.GUIDE: (
            "The agent continues with your guidance and re-plans; nothing of this proposal runs."
        ),
    }


def run_trace(review: ReviewRequest) -> list[dict]:
    """The run beside the decision: input, proposal, tool, policy, state, outcome."""
    policy = review.policy or {}
    action_type = action_type_for(review.action_name)
    steps = [
        {
            "step": "Input",
            "text": review.summary,
            "detail": f"run {review.run.run_id} of {review.run.agent.name}",
        },
        {
            "step": "Proposal",
            "text": f"{review.action_name}({_args_text(review.arguments)})",
            "detail": f"confidence {review.confidence}" if review.confidence is not None else "",
        },
        {
            "step": "Tool",
            "text": review.target_system or "-",
            "detail": (
                f"{action_type.get_tool_type_display()} tool" if action_type else "not catalogued"
            ),
        },
        {
            "step": "Policy",
            "text": f"{policy.get('outcome', 'human_review')} by rule {policy.get('rule') or '-'}",
            "detail": f"version {(policy.get('version') or '')[:12]}",
        },
        {"step": "State", "text": review.get_state_display(), "detail": ""},
    ]
    outcome = resume_instruction(review)
    steps.append({"step": "Outcome", "text": outcome["action"].replace("_", " "), "detail": ""})
    return steps


def _args_text(arguments: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in list(arguments.items())[:6])


def inbox_counts(*, user: AbstractBaseUser, now=None) -> dict:
    """A reviewer's home: open reviews they can work, by kind and by urgency."""
    now = now or timezone.now()
    soon = now + timedelta(hours=1)
    open_qs = reviews_visible_to(user=user).filter(
        state__in=(ReviewState.PENDING, ReviewState.ESCALATED)
    )
    totals = open_qs.aggregate(
        total=Count("pk"),
        mine=Count("pk", filter=Q(assignee=user)),
        unassigned=Count("pk", filter=Q(assignee__isnull=True)),
        overdue=Count("pk", filter=Q(due_at__lt=now)),
        due_soon=Count("pk", filter=Q(due_at__gte=now, due_at__lt=soon)),
        approval=Count("pk", filter=Q(kind="approval")),
        edit=Count("pk", filter=Q(kind="edit")),
        escalation=Count("pk", filter=Q(kind="escalation")),
    )
    return totals
