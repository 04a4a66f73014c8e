"""Real races on PostgreSQL: separate connections, real row locks."""

import pytest

from reviews.exceptions import AlreadyDecided
from reviews.models import Decision, ReviewState
from reviews.services import review_approve, review_reject
from reviews.tests.concurrency import run_together
from reviews.tests.factories import QueueFactory, UserFactory, make_review

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_many_reviewers_one_review_exactly_one_decision():
    reviewers = [UserFactory(username=f"rev{i}") for i in range(8)]
    queue = QueueFactory()
    review = make_review(queue=queue, reviewers=reviewers)

    def approve(user):
        return lambda: review_approve(review_id=review.review_id, reviewer=user)

    def reject(user):
        return lambda: review_reject(review_id=review.review_id, reviewer=user, reason="no")

    workers = [approve(u) if i % 2 else reject(u) for i, u in enumerate(reviewers)]
    results = run_together(workers)

    winners = [r for r in results if isinstance(r, Decision)]
    losers = [r for r in results if isinstance(r, AlreadyDecided)]
    assert len(winners) == 1, results
    assert len(losers) == len(reviewers) - 1, results
    review.refresh_from_db()
    assert review.state in (ReviewState.APPROVED, ReviewState.REJECTED)
    assert Decision.objects.filter(review=review).count() == 1
    assert review.history.filter(state=review.state).count() == 1
