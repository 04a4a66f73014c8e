"""factory_boy factories for policy data (direct saves: test setup, not the code under test)."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from policies.models import ActionType, PolicyEvaluation, ReviewerGrant, Rule, RuleSet
from policies.services import grant_create


class UserFactory(factory.django.DjangoModelFactory):
    """A staff user (password "pw") who may decide anything: UserFactory(grant=False) for
    one with no authority, as the tests of authority itself need; groups=[...] to join."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("pw")

    @factory.post_generation
    def groups(user, create, extracted, **kwargs):
        if create and extracted:
            user.groups.add(*extracted)

    @factory.post_generation
    def grant(user, create, extracted, **kwargs):
        # Reviewers may decide anything unless a test says otherwise; authority limits have
        # tests of their own.
        if create and extracted is not False:
            grant_create(actor=None, user=user)


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"group{n}")


class ActionTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActionType
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"action_{n}")
    tool_type = "write"
    target_system = "crm"
    args_schema = factory.LazyFunction(
        lambda: {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
    )


class RuleSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RuleSet

    name = factory.Sequence(lambda n: f"rules-{n}")
    tenant = ""


class RuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rule

    rule_set = factory.SubFactory(RuleSetFactory)
    name = factory.Sequence(lambda n: f"rule-{n}")
    priority = factory.Sequence(lambda n: (n + 1) * 10)
    conditions = factory.LazyFunction(list)
    outcome = "human_review"
    risk = "medium"


class ReviewerGrantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewerGrant

    user = factory.SubFactory(UserFactory, grant=False)
    action_names = factory.LazyFunction(list)
    tenants = factory.LazyFunction(list)


class PolicyEvaluationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PolicyEvaluation

    actor_label = "agent:test"
    action_name = "search_docs"
    outcome = "auto_execute"
    proposal = factory.LazyFunction(
        lambda: {
            "action": {
                "name": "search_docs",
                "target_system": "knowledge_base",
                "args": {"query": "refund policy"},
            },
            "confidence": 0.9,
            "estimated_cost_usd": 0.01,
        }
    )
    decision = factory.LazyFunction(lambda: {"outcome": "auto_execute"})


def make_proposal(
    action="search_docs", args=None, *, confidence=0.96, cost=0.02, target=None, **extra
):
    """A proposal dict in the API shape, with the seed's argument defaults per action."""
    defaults = {
        "search_docs": ({"query": "refund window"}, "knowledge_base"),
        "send_email": ({"template_id": "t-1", "customer_id": "c-1"}, "mailer"),
        "issue_refund": ({"amount": "50.00", "currency": "EUR", "order_id": "o-1"}, "billing"),
        "delete_record": ({"record_type": "contact", "record_id": "r-1"}, "crm"),
        "change_permission": ({"user_id": "u-1", "permission": "admin", "change": "grant"}, "iam"),
        "draft_reply": ({"ticket_id": "t-9", "content": "Hello"}, "helpdesk"),
    }
    base_args, base_target = defaults.get(action, ({}, ""))
    return {
        "action": {
            "name": action,
            "target_system": base_target if target is None else target,
            "args": {**base_args, **(args or {})},
        },
        "confidence": confidence,
        "estimated_cost_usd": cost,
        **extra,
    }
