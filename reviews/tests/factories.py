import uuid

import factory
from django.contrib.auth import get_user_model

from policies.services import grant_authority
from reviews.models import Agent, Queue
from reviews.services import review_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("pw")

    @factory.post_generation
    def grant(user, create, extracted, **kwargs):
        # Reviewers in these tests may decide anything unless a test says otherwise
        # (UserFactory(grant=False)); authority limits have tests of their own.
        if create and extracted is not False:
            grant_authority(actor=None, user=user)


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
    return review_create(agent=agent_obj, queue=queue, **fields)
