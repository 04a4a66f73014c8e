"""Who works a review (reviews.services.assignment): claiming and handing over inside the queue."""

import pytest

from hitl.kernel import Actor
from reviews.exceptions import (
    AlreadyDecided,
    InvalidReviewInput,
    NotAuthorized,
)
from reviews.models import Agent
from reviews.services import (
    review_approve,
    review_assign,
)
from reviews.tests.factories import UserFactory, make_review


def agent_actor(name="refund-bot"):
    return Actor.of_agent(Agent.objects.get_or_create(name=name)[0])


def state_of(review):
    review.refresh_from_db()
    return review.state


@pytest.mark.django_db
def test_a_member_claims_and_the_lead_reassigns(queue, reviewer, reviewer2):
    review = make_review(queue=queue)
    review_assign(review_id=review.review_id, actor=reviewer, assignee=reviewer)
    review.refresh_from_db()
    assert review.assignee == reviewer
    assert review.history.latest().history_change_reason == "assigned to rita"
    with pytest.raises(NotAuthorized):
        review_assign(review_id=review.review_id, actor=reviewer2, assignee=reviewer)
    review_assign(review_id=review.review_id, actor=queue.owner, assignee=reviewer2)
    review.refresh_from_db()
    assert review.assignee == reviewer2


@pytest.mark.django_db
def test_assignment_stays_inside_the_queue(queue, reviewer):
    review = make_review(queue=queue)
    outsider = UserFactory(username="outsider")
    with pytest.raises(NotAuthorized):
        review_assign(review_id=review.review_id, actor=outsider, assignee=outsider)
    with pytest.raises(InvalidReviewInput, match="not a member"):
        review_assign(review_id=review.review_id, actor=queue.owner, assignee=outsider)
    review_approve(review_id=review.review_id, reviewer=reviewer)
    with pytest.raises(AlreadyDecided):
        review_assign(review_id=review.review_id, actor=queue.owner, assignee=reviewer)
