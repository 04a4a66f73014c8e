"""Reads shared by the admin screens, the API and the services."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django_fsm import can_proceed

from policies.authority import check_authority
from policies.engine import QUEUE_OWNER, owner_only_text
from policies.models import Tenant
from policies.selectors import action_type_for, amount_for

from ..exceptions import (
    AlreadyDecided,
    ChoiceNotOffered,
    NotAuthorized,
    ReasonRequired,
    ReviewError,
    ReviewExpired,
    SelfDecisionForbidden,
    TransitionNotAllowed,
)
from ..models import (
    EXECUTING_CHOICES,
    FINAL_STATES,
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


def tenants_of(*, user: AbstractBaseUser) -> list[str]:
    """The tenants whose reviews this person may see, sorted (every one for a superuser)."""
    if user.is_superuser:
        return [slug for slug, _ in Tenant.choices()]
    return sorted(set(queues_for(user=user).values_list("tenant", flat=True)))


def reviews_visible_to(
    *, user: AbstractBaseUser, queryset: QuerySet[ReviewRequest] | None = None
) -> QuerySet[ReviewRequest]:
    """Reviews of the queues a person works in or owns, and the escalated ones of the
    queues whose escalations they own, as of this query. Assignment grants nothing:
    someone removed from a queue stops seeing its reviews, the ones assigned to them too."""
    qs = ReviewRequest.objects.all() if queryset is None else queryset
    if not user.is_active:
        return qs.none()
    if user.is_superuser:
        return qs
    works_in = Queue.objects.filter(Q(members=user) | Q(owner=user)).values("pk")
    escalations_of = Queue.objects.filter(escalation_owner=user).values("pk")
    # Once escalated, always theirs to look at: the one they decided stays on their screen.
    was_escalated = Exists(
        Decision.objects.filter(review=OuterRef("pk"), state_after=ReviewState.ESCALATED)
    )
    return qs.filter(
        Q(queue__in=works_in)
        | (Q(queue__in=escalations_of) & (Q(state=ReviewState.ESCALATED) | Q(was_escalated)))
    )


def sees_whole_run(*, user: AbstractBaseUser, run) -> bool:
    """Whether every review of the run is visible to this person (then its checkpoint is)."""
    if user.is_superuser:
        return True
    total = run.reviews.count()
    return reviews_visible_to(user=user).filter(run=run).count() == total


def can_decide(*, user: AbstractBaseUser, review: ReviewRequest) -> bool:
    """Whether this person may decide this review now, before any authority limit: the
    queue's members and owner (for an escalated review: its owner, its escalation owner,
    or the member it was handed to). Assignment alone never lets anyone decide."""
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    queue = review.queue
    if user.pk == queue.owner_id:
        return True
    if review.state == ReviewState.ESCALATED:
        # Once escalated, ownership has moved: a member who took the case over (or was
        # given it) keeps it only while they still work in the queue.
        if user.pk == queue.escalation_owner_id:
            return True
        return review.assignee_id == user.pk and _is_member(queue, user)
    return _is_member(queue, user)


def works_in(*, user: AbstractBaseUser, queue: Queue) -> bool:
    """Whether this person still works the queue (member, owner or escalation owner): a
    decision of someone who left it no longer carries weight when it is executed."""
    if not user.is_active:
        return False
    if user.is_superuser or user.pk in (queue.owner_id, queue.escalation_owner_id):
        return True
    return _is_member(queue, user)


def _is_member(queue: Queue, user: AbstractBaseUser) -> bool:
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


# --- who may take which choice ----------------------------------------------------------

# Choices that must say why: a rejection, an escalation and a question to the agent.
REASON_REQUIRED = frozenset(
    {Choice.REJECT, Choice.ESCALATE, Choice.REQUEST_MORE_EVIDENCE, Choice.GUIDE}
)

TRANSITION_FOR_CHOICE = {
    Choice.APPROVE: "approve",
    Choice.EDIT: "edit",
    Choice.REJECT: "reject",
    Choice.ESCALATE: "escalate",
    Choice.REQUEST_MORE_EVIDENCE: "request_more_evidence",
    Choice.TAKE_OVER: "take_over",
    # Guidance changes the plan rather than approving it: the edited state, nothing to run.
    Choice.GUIDE: "edit",
}


@dataclass(frozen=True)
class ChoiceVerdict:
    """Whether one person may take one choice on one review now; if not, why, and the
    error the decision service raises for it."""

    choice: str
    allowed: bool
    reason: str = ""
    error: type[ReviewError] | None = None
    # Refused because of the review (closed, expired, not possible in its state), not of
    # who is asking: a screen need not explain those choice by choice.
    about_review: bool = False

    def raise_if_refused(self) -> None:
        """Raise the refusal as the decision service reports it."""
        if self.allowed:
            return
        if self.error is ReasonRequired:
            raise ReasonRequired(
                self.reason, field_errors={"reason": ["This choice needs a reason."]}
            )
        raise self.error(self.reason)


def choice_verdict(
    *,
    review: ReviewRequest,
    user: AbstractBaseUser,
    choice: str,
    reason: str | None = None,
) -> ChoiceVerdict:
    """The one answer to "may this person take this choice on this review now, and if
    not, why": the decision service enforces it, the screens offer only what it allows.
    `reason` None means not typed yet (a screen asks before anyone types)."""
    return _Guard(review, user).verdict(choice, reason)


def choice_verdicts(*, review: ReviewRequest, user: AbstractBaseUser) -> list[ChoiceVerdict]:
    """The verdict on each choice the review offers, in the review's order."""
    guard = _Guard(review, user)
    return [guard.verdict(choice, None) for choice in review.choices]


def available_choices(*, review: ReviewRequest, user: AbstractBaseUser) -> list[str]:
    """The choices this person may take on this review now: nothing that would be refused
    is offered (an edit is checked again with the edited arguments when it is made)."""
    return [v.choice for v in choice_verdicts(review=review, user=user) if v.allowed]


def needs_queue_owner(review: ReviewRequest) -> bool:
    """Whether only the queue's owner may let this review's action happen: the policy that
    routed it did not know the action (policies.engine, unknown actions)."""
    policy = review.policy if isinstance(review.policy, dict) else {}
    if policy.get("escalate_to") == QUEUE_OWNER:
        return True
    # Reviews opened before the policy said so still carry its failed catalogue check.
    return any(
        isinstance(check, dict)
        and check.get("name") == "known_action_type"
        and check.get("passed") is False
        for check in policy.get("checks") or ()
    )


def may_act_as_queue_owner(*, review: ReviewRequest, user: AbstractBaseUser) -> bool:
    """Whether this person may let the action happen as far as the owner-only rule goes:
    always, unless the review needs the queue owner and they are not it (nor a superuser)."""
    if user.is_superuser or user.pk == review.queue.owner_id:
        return True
    return not needs_queue_owner(review)


def authority_refusal(
    *,
    review: ReviewRequest,
    user: AbstractBaseUser,
    arguments: Mapping[str, Any] | None = None,
    amount_matters: bool = True,
) -> str | None:
    """Why this person's grants do not cover deciding this review (None if they do).
    The amount (read from `arguments`, by default the proposed ones) limits only the
    choices that let the action happen: anyone may still stop or escalate it."""
    amount = None
    if amount_matters:
        args = review.arguments if arguments is None else arguments
        amount = amount_for(action_name=review.action_name, args=args)
        action_type = action_type_for(review.action_name)
        unreadable = amount is None and action_type is not None and action_type.amount_path
        if unreadable and not user.is_superuser:
            # An amount nobody can read is no amount within anyone's limit.
            return (
                f"The amount at '{action_type.amount_path}' cannot be read, so no limit covers it."
            )
    verdict = check_authority(
        user=user, action_name=review.action_name, tenant=review.tenant, amount=amount
    )
    return None if verdict.allowed else f"Not within your authority: {verdict.reason}."


class _Guard:
    """Verdicts for one person on one review; what every choice shares is looked up once."""

    def __init__(self, review: ReviewRequest, user: AbstractBaseUser):
        self.review = review
        self.user = user
        self._decides: bool | None = None
        self._authority: dict[bool, str | None] = {}

    def decides(self) -> bool:
        if self._decides is None:
            self._decides = can_decide(user=self.user, review=self.review)
        return self._decides

    def authority(self, amount_matters: bool) -> str | None:
        if amount_matters not in self._authority:
            self._authority[amount_matters] = authority_refusal(
                review=self.review, user=self.user, amount_matters=amount_matters
            )
        return self._authority[amount_matters]

    def verdict(self, choice: str, reason: str | None) -> ChoiceVerdict:
        review, user = self.review, self.user

        def no(error: type[ReviewError], why: str, about_review: bool = False) -> ChoiceVerdict:
            return ChoiceVerdict(choice, False, why, error, about_review)

        if review.state in FINAL_STATES:
            state = review.get_state_display().lower()
            return no(AlreadyDecided, f"This review is already {state}.", True)
        if review.is_past_expiry():
            return no(ReviewExpired, "This review has expired and can no longer be decided.", True)
        transition = getattr(review, TRANSITION_FOR_CHOICE.get(choice, ""), None)
        if transition is None or not can_proceed(transition, check_conditions=False):
            state = review.get_state_display().lower()
            why = f"'{choice}' is not possible while the review is {state}."
            return no(TransitionNotAllowed, why, True)
        if choice not in review.choices:
            return no(ChoiceNotOffered, f"'{choice}' is not offered for this review.", True)
        if choice == Choice.TAKE_OVER and _taken_over_by(review, user):
            return no(TransitionNotAllowed, "You have already taken this case over.")
        if reason is not None and choice in REASON_REQUIRED and not reason:
            return no(
                ReasonRequired, "A reason is required to " + Choice(choice).label.lower() + "."
            )
        if review.proposed_by_user_id is not None and review.proposed_by_user_id == user.pk:
            return no(
                SelfDecisionForbidden, "You proposed this action and cannot decide it yourself."
            )
        if not self.decides():
            escalated = review.state == ReviewState.ESCALATED
            if escalated and user.is_active and _is_member(review.queue, user):
                return no(NotAuthorized, _escalated_to_text(review))
            return no(NotAuthorized, "You are not a reviewer of this review's queue.")
        executing = choice in EXECUTING_CHOICES
        if choice == Choice.EDIT and review.required_approvals > 1:
            return no(
                ChoiceNotOffered,
                f"This review needs {review.required_approvals} approvers; an edit by one "
                "person cannot replace that. Reject with a reason or ask for evidence.",
            )
        if executing and not may_act_as_queue_owner(review=review, user=user):
            return no(NotAuthorized, owner_only_text(review.action_name))
        # What lets the action happen needs a grant up to the amount; what steers the agent
        # or takes the case needs a grant for the action and tenant. Stopping it, asking for
        # evidence or escalating it is every member's job, or an action nobody holds a grant
        # for (one missing from the catalogue) would wait in the inbox with no way out.
        if executing:
            refusal = self.authority(amount_matters=True)
        elif choice in (Choice.GUIDE, Choice.TAKE_OVER):
            refusal = self.authority(amount_matters=False)
        else:
            refusal = None
        if refusal:
            return no(NotAuthorized, refusal)
        return ChoiceVerdict(choice, True)


def _escalated_to_text(review: ReviewRequest) -> str:
    queue = review.queue
    holder = review.assignee or queue.escalation_owner or queue.owner
    who = holder.get_username() if holder else f"the owner of {queue.name}"
    return f"This review is escalated: {who} decides it now, not the queue's members."


def _taken_over_by(review: ReviewRequest, user: AbstractBaseUser) -> bool:
    return (
        review.state == ReviewState.ESCALATED
        and review.assignee_id == user.pk
        and review.decisions.filter(choice=Choice.TAKE_OVER, reviewer=user).exists()
    )


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


def inbox_counts(*, user: AbstractBaseUser, now=None) -> list[dict]:
    """A reviewer's home: open reviews they can work, by kind and by urgency, one row per
    tenant (figures never add up customers), with the tenant's name."""
    now = now or timezone.now()
    soon = now + timedelta(hours=1)
    open_qs = reviews_visible_to(user=user).filter(
        state__in=(ReviewState.PENDING, ReviewState.ESCALATED)
    )
    rows = list(
        open_qs.values("tenant")
        .annotate(
            total=Count("pk"),
            mine=Count("pk", filter=Q(assignee=user)),
            unassigned=Count("pk", filter=Q(assignee__isnull=True)),
            overdue=Count("pk", filter=Q(due_at__lt=now)),
            due_soon=Count("pk", filter=Q(due_at__gte=now, due_at__lt=soon)),
            approval=Count("pk", filter=Q(kind="approval")),
            edit=Count("pk", filter=Q(kind="edit")),
            escalation=Count("pk", filter=Q(kind="escalation")),
        )
        .order_by("tenant")
    )
    names = Tenant.names(r["tenant"] for r in rows)
    for row in rows:
        row["tenant_name"] = names[row["tenant"]]
    return rows
