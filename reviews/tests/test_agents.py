"""agent_update: an agent's settings changed through an audited service."""

import pytest

from hitl.kernel import Actor
from reviews.exceptions import InvalidReviewInput
from reviews.models import Agent
from reviews.services import agent_create
from reviews.services.agents import agent_update
from reviews.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    return agent_create(actor=Actor.system("test"), name="refund-bot")[0]


def test_a_change_is_saved_with_who_and_what(agent):
    admin = UserFactory(username="ada")
    agent_update(
        actor=Actor.of_user(admin),
        agent=agent,
        tenant="",
        callback_url="https://agent.example.com/hook",
        is_active=False,
    )
    stored = Agent.objects.get(pk=agent.pk)
    assert (stored.callback_url, stored.is_active) == ("https://agent.example.com/hook", False)
    row = stored.history.latest()
    assert (row.history_user, row.history_actor) == (admin, "user:ada")
    assert row.history_change_reason == "changed callback_url, is_active"


def test_bad_input_is_refused_with_field_errors_and_nothing_is_saved(agent):
    before = agent.history.count()
    with pytest.raises(InvalidReviewInput) as refused:
        agent_update(
            actor=Actor.system("test"),
            agent=agent,
            tenant="nobody",
            callback_url="not a url",
            is_active=True,
        )
    assert set(refused.value.field_errors) == {"tenant", "callback_url"}
    stored = Agent.objects.get(pk=agent.pk)
    assert (stored.tenant, stored.callback_url, stored.history.count()) == ("", "", before)
