"""Hostile input: schemathesis generates requests from our own OpenAPI schema and checks
that no response is a server error and every response matches the schema."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from hitl.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def agent_headers(db):
    from hitl.kernel import Actor
    from policies.seed import seed_policy
    from reviews.services import agent_create
    from reviews.tests.factories import QueueFactory

    seed_policy()
    QueueFactory(slug="operations")
    QueueFactory(slug="access")
    _, key = agent_create(actor=Actor.system("fuzz"), name="fuzzer")
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_responses_match_the_schema(case, agent_headers):
    case.call_and_validate(headers=agent_headers)
