"""Who works a review: claiming it, or its queue's owner handing it to a member."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from hitl.kernel import Actor

from .. import selectors
from ..exceptions import (
    AlreadyDecided,
    InvalidReviewInput,
    NotAuthorized,
)
from ..models import (
    FINAL_STATES,
    ReviewRequest,
)
from ._common import (
    lock_review,
    save_transition,
    stamp,
)


def review_assign(
    *,
    review_id: str,
    actor: AbstractBaseUser,
    assignee: AbstractBaseUser | None,
) -> ReviewRequest:
    """Claim an open review (assignee = actor), or, for the queue's owner, hand it to a
    member; None unassigns. Assignment says who works it, not who may decide it."""
    with transaction.atomic(durable=True):
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
