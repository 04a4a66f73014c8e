"""One strategy per expiry behaviour: what a queue does with a review nobody decided in time.

A new behaviour is one `ExpiryStrategy` in `STRATEGIES` (and the migration Django writes
for the `Queue.expiry_behaviour` choices). The sweep and the single expiry both run it
through `reviews.services.sweeps.expire_reviews`; the resume instruction and the queue's
settings read it from here. Whatever the strategy, an expired review never executes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import models

from hitl.kernel import Actor, create_with_history, stamp

if TYPE_CHECKING:
    from .models import ReviewRequest

# What the follow-up of a batch returns: the review each expired one was replaced by.
Successors = dict[int, "ReviewRequest"]


@dataclass(frozen=True)
class ExpiryStrategy:
    """One expiry behaviour: its setting, its follow-up, what the history says of it."""

    value: str
    # The queue setting's label, and what the agent is told happened.
    label: str
    # The history's change reason, given the review that replaced the expired one.
    reason: Callable[["ReviewRequest | None"], str]
    # The queue must name a fallback queue to use it.
    needs_fallback: bool = False
    # Work done for a batch after it expired (new reviews elsewhere); None: nothing.
    follow_up: Callable[[list["ReviewRequest"], datetime, Actor], Successors] | None = None


def _reroute(reviews: list["ReviewRequest"], now: datetime, actor: Actor) -> Successors:
    """A new review in the fallback queue for each, linked from the expired one; a review
    without a usable fallback is cancelled instead."""
    from .models import ReviewRequest

    # The batch loaded a few columns; the packets to copy come in one query, not a query
    # per deferred field per review.
    packets = (
        ReviewRequest.objects.select_related("proposed_by_user")
        .prefetch_related("evidence")
        .in_bulk([r.pk for r in reviews if r.queue.fallback is not None])
    )
    successors: Successors = {}
    for review in reviews:
        fallback = review.queue.fallback
        if fallback is None or fallback.tenant != review.queue.tenant:
            # A fallback of another tenant is no fallback: cancel rather than hand the
            # review to another customer's people.
            review.expiry_action = CANCEL
            continue
        successors[review.pk] = _copy(packets[review.pk], review, fallback, now, actor)
    return successors


# The packet's fields a rerouted review keeps as they were.
_KEPT = (
    "kind",
    "tenant",
    "action_name",
    "target_system",
    "arguments",
    "summary",
    "consequence",
    "content",
    "affected_resources",
    "confidence",
    "uncertainty",
    "question",
    "options_considered",
    "policy",
    "risk",
    "choices",
    "required_approvals",
    "versions",
    "audit",
    "proposed_by",
    "proposed_by_user",
)


def _copy(packet, review, fallback, now: datetime, actor: Actor) -> "ReviewRequest":
    from .models import Evidence, ReviewRequest
    from .services.creation import index_resources

    successor = ReviewRequest(
        run=review.run,
        queue=fallback,
        due_at=now + fallback.sla,
        expires_at=now + fallback.expiry,
        next_reminder_at=fallback.first_reminder_at(now + fallback.sla),
        created_at=now,
        **{name: getattr(packet, name) for name in _KEPT},
    )
    stamp(successor, actor, f"rerouted from {review.review_id} in {review.queue.slug}")
    successor.save()
    index_resources(successor)
    evidence_fields = ("evidence_id", "title", "url", "excerpt", "fresh_until", "position")
    create_with_history(
        [
            Evidence(
                review=successor,
                supplied_at=e.supplied_at,
                **{name: getattr(e, name) for name in evidence_fields},
            )
            for e in packet.evidence.all()
        ],
        actor=actor,
        reason=f"copied from {review.review_id}",
    )
    return successor


def _rerouted_reason(successor: "ReviewRequest | None") -> str:
    if successor is None:
        return "expired: cancelled, the agent is told"
    return f"expired: rerouted to {successor.queue.slug} as {successor.review_id}"


CANCEL, REROUTE, REGENERATE = "cancel", "reroute", "regenerate"

STRATEGIES: tuple[ExpiryStrategy, ...] = (
    ExpiryStrategy(
        value=CANCEL,
        label="Cancel and tell the agent",
        reason=lambda successor: "expired: cancelled, the agent is told",
    ),
    ExpiryStrategy(
        value=REROUTE,
        label="Reroute to the fallback queue",
        reason=_rerouted_reason,
        needs_fallback=True,
        follow_up=_reroute,
    ),
    ExpiryStrategy(
        value=REGENERATE,
        label="Ask the agent for fresh evidence",
        reason=lambda successor: (
            "expired: the agent is asked for fresh evidence and a new proposal"
        ),
    ),
)

STRATEGY_BY_VALUE = {strategy.value: strategy for strategy in STRATEGIES}

ExpiryBehaviour = models.TextChoices(
    "ExpiryBehaviour",
    [(s.value.upper(), (s.value, s.label)) for s in STRATEGIES],
    module=__name__,
)
