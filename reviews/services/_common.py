"""Steps every review service shares: lock, move the state machine, stamp the history."""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django_fsm import ConcurrentTransition
from django_fsm import TransitionNotAllowed as FSMTransitionNotAllowed

from hitl.db import for_update
from hitl.kernel import Actor, create_with_history, stamp  # noqa: F401  (re-exported)
from policies.engine import DEFAULT_AUDIENCE, proposal_input

from ..choices import spec_for
from ..exceptions import (
    AlreadyDecided,
    InvalidReviewInput,
    NotAuthorized,
    ReviewExpired,
    TransitionNotAllowed,
)
from ..models import OPEN_STATES, AgentRun, ReviewRequest, ReviewState, RunStatus
from .webhooks import run_webhook_queue


def lock_review(review_id: str) -> ReviewRequest:
    try:
        return (
            for_update(ReviewRequest.objects.all(), of=("self",))
            .select_related("queue", "run")
            .get(review_id=review_id)
        )
    except ReviewRequest.DoesNotExist:
        raise InvalidReviewInput(
            f"No review {review_id}.", field_errors={"review_id": ["Unknown review."]}
        ) from None


def move(review: ReviewRequest, transition_name: str) -> None:
    try:
        getattr(review, transition_name)()
    except FSMTransitionNotAllowed as exc:
        if review.is_past_expiry() and transition_name != "expire":
            raise ReviewExpired("This review has expired and can no longer be decided.") from exc
        raise TransitionNotAllowed(
            f"'{transition_name}' is not possible while the review is "
            f"{review.get_state_display().lower()}."
        ) from exc


def save_transition(review: ReviewRequest) -> None:
    try:
        review.save()
    except ConcurrentTransition as exc:
        # Without row locks (SQLite) the state check in the UPDATE is what catches a race.
        raise AlreadyDecided("Someone else changed this review first.") from exc


def check_agent_owns(review: ReviewRequest, actor: Actor) -> None:
    if actor.user is not None and actor.user.is_superuser:
        return
    if actor.agent is None or actor.agent.pk != review.run.agent_id:
        raise NotAuthorized("Only the agent that proposed this action may do that.")


# Reviews that keep a run waiting: every open one, a question for evidence too (the agent
# answers it, but has no decision to resume with until a person decides).
OPEN_FOR_RUN = OPEN_STATES


def run_status_after(
    *, current: str, has_open_reviews: bool, taken_over: bool, releases_person: bool
) -> str:
    """The one rule for a run's status after one of its reviews moved, whatever the path
    (a decision, a single expiry, the sweep)."""
    if current in (RunStatus.COMPLETED, RunStatus.STOPPED):
        return current
    if taken_over:
        return RunStatus.HANDED_OVER
    if current == RunStatus.HANDED_OVER and not releases_person:
        # A person owns the run until they guide the agent back or end it; a sibling
        # review that expires or is decided meanwhile does not give it back.
        return current
    return RunStatus.WAITING if has_open_reviews else RunStatus.RESUMABLE


def refresh_run_status(run: AgentRun, actor: Actor, review: ReviewRequest) -> None:
    if review.audit:
        return  # an audit looks back at what already ran: the run never waits for it
    locked = for_update(AgentRun.objects.all()).get(pk=run.pk)
    status = run_status_after(
        current=locked.status,
        has_open_reviews=locked.reviews.filter(state__in=OPEN_FOR_RUN, audit=False).exists(),
        taken_over=(
            review.state == ReviewState.ESCALATED
            and bool(review.assignee_id)
            and _taken_over(review)
        ),
        releases_person=review.state
        in (ReviewState.EDITED, ReviewState.REJECTED, ReviewState.RESOLVED),
    )
    if status != locked.status:
        locked.status = status
        stamp(locked, actor, f"review {review.review_id} is {review.state}")
        locked.save()
        if status == RunStatus.RESUMABLE:
            run_webhook_queue(run=locked, event="run.resumable")


def summarise(errors: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errors.items())


def full_clean_or_refuse(instance, **options: Any) -> None:
    """The model's own validation (`full_clean(**options)`), refused as
    InvalidReviewInput with its field errors."""
    try:
        instance.full_clean(**options)
    except ValidationError as exc:
        raise InvalidReviewInput(
            summarise(exc.message_dict), field_errors=exc.message_dict
        ) from exc


def policy_input(
    review: ReviewRequest, arguments: Mapping[str, Any], fresh_facts: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The proposal as the policy sees it, rebuilt from the review with other arguments
    (an edit, the final arguments) and, when given, fresher facts. A confidence or cost the
    agent did not give stays unknown: the policy must not see a certainty nobody claimed."""
    given = review.policy.get("input", {}) if isinstance(review.policy, dict) else {}
    return proposal_input(
        action_name=review.action_name,
        target_system=review.target_system,
        args=arguments,
        confidence=review.confidence,
        estimated_cost_usd=given.get("estimated_cost_usd"),
        audience=given.get("audience", DEFAULT_AUDIENCE),
        tenant=review.tenant,
        facts={**(given.get("facts") or {}), **dict(fresh_facts or {})},
    )


def _taken_over(review: ReviewRequest) -> bool:
    last = review.decisions.order_by("-decided_at", "-id").first()
    return last is not None and spec_for(last.choice).hands_over
