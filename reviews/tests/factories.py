"""factory_boy factories and service-backed builders for reviews, decisions and roles."""

import uuid

import factory
from django.contrib.auth.models import Permission

from policies.tests.factories import GroupFactory, UserFactory
from reviews.management.commands.seed_demo import GROUP_PERMISSIONS
from reviews.models import Agent, Queue
from reviews.services import review_create, review_decide
from reviews.services.creation import ReviewDraft
from reviews.services.proposals import action_propose


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue

    name = factory.Sequence(lambda n: f"Queue {n}")
    slug = factory.Sequence(lambda n: f"queue-{n}")
    owner = factory.SubFactory(UserFactory)


def make_review(*, queue=None, reviewers=(), agent="refund-bot", **overrides):
    """A review created the way agents create them: through the service."""
    queue = queue or QueueFactory()
    queue.members.add(*reviewers)
    fields = {
        "run_id": f"run-{uuid.uuid4().hex}",
        "kind": "approval",
        "action_name": "issue_refund",
        "target_system": "payments",
        "arguments": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
        "summary": "Refund order 17",
        "consequence": "Approving will refund 20.00 EUR to order 17.",
        "confidence": 0.96,
        "evidence": [
            {"id": "order-17", "title": "Order 17", "url": "https://shop.example.com/o/17"}
        ],
    }
    fields.update(overrides)
    agent_obj = Agent.objects.get_or_create(name=agent)[0]
    context = {
        name: fields.pop(name)
        for name in ("run_id", "tenant", "thread_id", "checkpoint", "proposed_by_user")
        if name in fields
    }
    return review_create(agent=agent_obj, queue=queue, draft=ReviewDraft(**fields), **context)


def propose_review(*, agent, **proposal):
    """A review opened the way an agent's proposal opens one: the policy picks its kind,
    queue, risk, choices and deadline."""
    result = action_propose(agent=agent, proposal=proposal)
    assert result.review is not None, f"{result.outcome}: {result.decision.explanation}"
    return result.review


def make_decision(review, *, reviewer, choice="approve", **fields):
    """One reviewer's decision on `review`, recorded through the decision service."""
    return review_decide(review_id=review.review_id, reviewer=reviewer, choice=choice, **fields)


def role_groups():
    """The groups people are given (Reviewers, Leads, ML engineers), with the permissions
    seed_demo, where they are defined, gives them."""
    groups = {}
    for name, labels in GROUP_PERMISSIONS.items():
        pairs = [label.split(".") for label in labels]
        group = GroupFactory(name=name)
        group.permissions.set(
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in pairs
        )
        groups[name] = group
    return groups
