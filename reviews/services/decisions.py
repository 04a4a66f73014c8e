"""A reviewer's decision: checked by the one guard, applied as its choice's spec says."""

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from hitl.kernel import Actor
from policies.exceptions import PolicyInputError
from policies.selectors import action_type_for, default_queue, evaluate_proposal

from .. import selectors
from ..choices import ChoiceSpec, spec_for
from ..exceptions import (
    DuplicateApproval,
    InvalidReviewInput,
    NotAuthorized,
)
from ..models import (
    FINAL_STATES,
    Choice,
    Decision,
    ReviewKind,
    ReviewRequest,
)
from ..signals import review_decided, send_on_commit
from ..validation import json_problem
from ._common import (
    lock_review,
    move,
    policy_input,
    refresh_run_status,
    save_transition,
    stamp,
    summarise,
)
from ._input import enum_value
from .execution import queue_executor_on_commit
from .webhooks import webhook_queue


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
    choice_value = enum_value(Choice, choice, "choice", errors)
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


def _one_choice(choice: str, doc: str) -> Callable[..., Decision]:
    """`review_decide` with the choice fixed: a shorthand for programs and tests."""

    def decide(**kwargs: Any) -> Decision:
        return review_decide(choice=choice, **kwargs)

    decide.__name__ = decide.__qualname__ = f"review_{choice}"
    decide.__doc__ = doc
    return decide


# Shorthands for programs and tests; the admin and the API call review_decide.
review_approve = _one_choice(Choice.APPROVE, "Approve the action (or the text) as it is.")
review_edit = _one_choice(Choice.EDIT, "Approve with the reviewer's corrections.")
review_reject = _one_choice(Choice.REJECT, "Refuse the action; the run stops or re-plans.")
review_escalate = _one_choice(Choice.ESCALATE, "Hand the review to the escalation owner.")
review_request_more_evidence = _one_choice(Choice.REQUEST_MORE_EVIDENCE, "Ask the agent.")
review_take_over = _one_choice(Choice.TAKE_OVER, "A person takes the case over from the agent.")
review_guide = _one_choice(Choice.GUIDE, "The agent re-plans with the reviewer's guidance.")
review_done_by_person = _one_choice(
    Choice.DONE_BY_PERSON, "Close a taken-over case its person handled outside the agent."
)
review_not_needed = _one_choice(Choice.NOT_NEEDED, "Close a taken-over case as not needed.")


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
    spec = spec_for(choice)
    reason = (reason or "").strip()
    _refuse_unstorable(spec, reason, arguments, content)
    now = timezone.now()
    actor = Actor.of_user(reviewer)
    with transaction.atomic(durable=True):
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
        final = _final_version(review, reviewer, spec, arguments, content)
        partial_reason = _partial_approval(review, reviewer, spec)
        if partial_reason:
            stamp(review, actor, partial_reason)
        else:
            _close_round(review, reviewer, spec, reason, final, now)
            stamp(review, actor, choice if not reason else f"{choice}: {reason}")
        save_transition(review)
        decision = Decision.objects.create(
            review=review,
            reviewer=reviewer,
            choice=choice,
            reason=reason,
            edited_arguments=final.arguments if spec.correction == "edit" else None,
            edited_content=final.content if spec.correction == "edit" else None,
            diff=final.diff,
            state_before=state_before,
            state_after=review.state,
            opened_at=opened_at,
            decided_at=now,
        )
        refresh_run_status(review.run, actor, review)
        if not partial_reason:
            if spec.executes and not review.audit:
                queue_executor_on_commit(review)
            webhook_queue(review=review, event="review.decided")
        _send_decided_on_commit(review.review_id, decision.pk)
    return decision


def _refuse_unstorable(
    spec: ChoiceSpec, reason: str, arguments: Mapping[str, Any] | None, content: str | None
) -> None:
    """Refuse, before any lock, what no decision of this choice could store."""
    problem = json_problem({"reason": reason, "content": content, "arguments": arguments})
    if problem:
        raise InvalidReviewInput(f"Cannot store this decision: {problem}.")
    if spec.correction != "edit" and (arguments is not None or content is not None):
        raise InvalidReviewInput(
            "Only an edit carries arguments or content.",
            field_errors={"choice": ["Use choice 'edit' to change arguments or content."]},
        )


@dataclass(frozen=True)
class _Final:
    """What the action would run with after this decision, and the edit's diff."""

    arguments: dict
    content: str
    diff: str = ""


def _final_version(
    review: ReviewRequest,
    reviewer: AbstractBaseUser,
    spec: ChoiceSpec,
    arguments: Mapping[str, Any] | None,
    content: str | None,
) -> _Final:
    """The arguments and content the decision lets through; an edit is re-validated."""
    if spec.correction != "edit":
        return _Final(review.arguments, review.content)
    final_arguments, final_content, diff = _apply_edit(review, arguments, content)
    if final_arguments != review.arguments:
        _revalidate_edit(review, final_arguments)
        # The edited amount must be within the reviewer's limit too.
        refusal = selectors.authority_refusal(
            review=review, user=reviewer, arguments=final_arguments
        )
        if refusal:
            raise NotAuthorized(refusal)
    return _Final(final_arguments, final_content, diff)


def _partial_approval(review: ReviewRequest, reviewer: AbstractBaseUser, spec: ChoiceSpec) -> str:
    """The change reason of an approval that does not yet reach the approvals the review
    needs ("" when this decision closes the round)."""
    if not spec.approves or review.required_approvals <= 1:
        return ""
    approvers = _approvers_this_round(review)
    if reviewer.pk in approvers:
        raise DuplicateApproval(
            "You already approved this review; it needs another reviewer's approval."
        )
    count = len(approvers) + 1
    if count >= review.required_approvals:
        return ""
    return f"approval {count} of {review.required_approvals}"


def _close_round(
    review: ReviewRequest,
    reviewer: AbstractBaseUser,
    spec: ChoiceSpec,
    reason: str,
    final: _Final,
    now: datetime,
) -> None:
    """Move the review as the choice says and write what it decides on the review."""
    move(review, spec.transition)
    if spec.executes:
        review.final_arguments = final.arguments
        review.final_content = final.content
    spec.apply(review, reviewer, reason)
    if review.state in FINAL_STATES:
        review.decided_at = now


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
        if spec_for(choice).approves:
            approvers.add(reviewer_id)
        else:
            approvers.clear()
    return approvers


def _send_decided_on_commit(review_id: str, decision_id: int) -> None:
    send_on_commit(review_decided, review_id=review_id, decision_id=decision_id)
