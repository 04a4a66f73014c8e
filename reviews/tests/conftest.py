import pytest

from reviews.tests.factories import QueueFactory, UserFactory, make_review


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita")


@pytest.fixture
def reviewer2(db):
    return UserFactory(username="remy")


@pytest.fixture
def queue(db, reviewer, reviewer2):
    q = QueueFactory(slug="operations", name="Operations")
    q.members.add(reviewer, reviewer2)
    return q


@pytest.fixture
def review(queue):
    return make_review(queue=queue)
