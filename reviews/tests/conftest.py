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


@pytest.fixture
def seeded(db):
    """The seed policy and the two queues it routes to, with one reviewer in each."""
    from policies.seed import seed_policy

    seed_policy()
    ops = QueueFactory(slug="operations", name="Operations")
    access = QueueFactory(slug="access", name="Access")
    return {"operations": ops, "access": access}


@pytest.fixture
def agent_key(db):
    from hitl.kernel import Actor
    from reviews.services import agent_create

    agent, key = agent_create(actor=Actor.system("test"), name="refund-bot")
    return agent, key


@pytest.fixture
def agent_client(agent_key):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_key[1]}")
    client.agent = agent_key[0]
    return client
