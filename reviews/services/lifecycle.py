"""The agent's side and the system's: evidence supplied, proposals withdrawn, expiry."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition

from hitl.kernel import Actor

from ..exceptions import (
    AlreadyDecided,
    InvalidReviewInput,
    ReasonRequired,
    ReviewExpired,
    TransitionNotAllowed,
)
from ..expiry import CANCEL
from ..models import (
    FINAL_STATES,
    Evidence,
    ReviewRequest,
    ReviewState,
)
from ._common import (
    check_agent_owns,
    lock_review,
    move,
    refresh_run_status,
    save_transition,
    stamp,
    summarise,
)
from ._input import clean_evidence
from .sweeps import expire_reviews


def review_supply_evidence(
    *,
    review_id: str,
    actor: Actor,
    evidence: Iterable[Mapping[str, Any]],
    note: str = "",
) -> ReviewRequest:
    """The agent answers a request for more evidence; the review goes back to pending."""
    errors: dict[str, list[str]] = {}
    rows = clean_evidence(evidence, errors)
    if not rows and "evidence" not in errors:
        errors["evidence"] = ["Supply at least one piece of evidence."]
    if errors:
        raise InvalidReviewInput(summarise(errors), field_errors=errors)
    now = timezone.now()
    with transaction.atomic(durable=True):
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
    with transaction.atomic(durable=True):
        review = lock_review(review_id)
        cancel_locked(review, actor=actor, reason=reason)
        refresh_run_status(review.run, actor, review)
    return review


def cancel_locked(review: ReviewRequest, *, actor: Actor, reason: str) -> None:
    """Cancel a review the caller locked, in the caller's transaction; the caller sets the
    run's status (a cancel, or the run's end)."""
    check_agent_owns(review, actor)
    if review.state in FINAL_STATES:
        raise AlreadyDecided(f"This review is already {review.get_state_display().lower()}.")
    move(review, "cancel")
    review.decided_at = timezone.now()
    stamp(review, actor, f"cancelled: {reason}")
    save_transition(review)


def review_expire(*, review_id: str, actor: Actor | None = None) -> ReviewRequest:
    """Close a review that nobody decided in time; it never executes. The sweep's path,
    except that one review expired on its own applies no queue behaviour (no reroute):
    the agent is told it was cancelled."""
    actor = actor or Actor.system("expiry")
    with transaction.atomic(durable=True):
        review = lock_review(review_id)
        if review.state in FINAL_STATES:
            raise AlreadyDecided(f"This review is already {review.get_state_display().lower()}.")
        if not review.is_past_expiry():
            raise TransitionNotAllowed("This review has not reached its expiry time.")
        try:
            expire_reviews([review], now=timezone.now(), actor=actor, behaviour=CANCEL)
        except ConcurrentTransition as exc:
            raise AlreadyDecided("Someone else changed this review first.") from exc
    review.refresh_from_db()
    return review
