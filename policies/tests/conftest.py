import pytest

from policies.seed import seed_policy
from policies.tests.factories import UserFactory


@pytest.fixture
def seeded(db):
    return seed_policy()


@pytest.fixture
def actor(db):
    return UserFactory(username="lead", grant=False)
