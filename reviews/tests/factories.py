import uuid

import factory
from django.contrib.auth import get_user_model

from reviews.actors import Actor
from reviews.models import Queue
from reviews.services import review_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("pw")


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
    return review_create(actor=Actor.agent(agent), agent_name=agent, queue=queue, **fields)
