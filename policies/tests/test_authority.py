"""Reviewer authority: grants by user or group, amounts, tenants, revocation."""

from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError

from policies import services
from policies.authority import check_authority
from policies.tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", grant=False)


def test_no_grant_is_refused_with_a_readable_reason(seeded, alice):
    result = check_authority(
        user=alice, action_name="issue_refund", tenant="acme", amount=Decimal("900")
    )
    assert result.allowed is False
    assert result.reason == "no grant lets alice decide issue_refund for tenant acme up to 900.00"


def test_amount_over_the_limit_is_refused(seeded, actor, alice):
    services.grant_create(
        actor=actor, user=alice, action_names=["issue_refund"], max_amount=Decimal("500")
    )
    assert (
        check_authority(
            user=alice, action_name="issue_refund", tenant="acme", amount=Decimal("500.00")
        ).allowed
        is True
    )
    refused = check_authority(
        user=alice, action_name="issue_refund", tenant="acme", amount=Decimal("500.01")
    )
    assert refused.allowed is False
    assert "up to 500.01" in refused.reason
    # An action without an amount is not limited by the amount.
    assert (
        check_authority(user=alice, action_name="issue_refund", tenant="acme", amount=None).allowed
        is True
    )


def test_other_action_and_other_tenant_are_refused(seeded, actor, alice):
    services.grant_create(actor=actor, user=alice, action_names=["send_email"], tenants=["acme"])
    assert (
        check_authority(user=alice, action_name="send_email", tenant="acme", amount=None).allowed
        is True
    )
    other_tenant = check_authority(
        user=alice, action_name="send_email", tenant="globex", amount=None
    )
    assert other_tenant.allowed is False
    assert other_tenant.reason == "no grant lets alice decide send_email for tenant globex"
    assert (
        check_authority(user=alice, action_name="delete_record", tenant="acme", amount=None).allowed
        is False
    )
    default_tenant = check_authority(user=alice, action_name="send_email", tenant="", amount=None)
    assert default_tenant.reason == "no grant lets alice decide send_email for the default tenant"


def test_group_grant_works_for_its_members_only(seeded, actor, alice):
    refunds = GroupFactory(name="refunds")
    alice.groups.add(refunds)
    bob = UserFactory(username="bob", grant=False)
    services.grant_create(
        actor=actor, group=refunds, action_names=["issue_refund"], max_amount=Decimal("1000")
    )
    allowed = check_authority(
        user=alice, action_name="issue_refund", tenant="acme", amount=Decimal("900")
    )
    assert allowed.allowed is True
    assert "group refunds" in allowed.reason
    assert (
        check_authority(
            user=bob, action_name="issue_refund", tenant="acme", amount=Decimal("900")
        ).allowed
        is False
    )


def test_superuser_is_always_allowed_and_inactive_never(seeded, actor, alice):
    root = UserFactory(username="root", is_superuser=True, grant=False)
    assert (
        check_authority(
            user=root, action_name="anything", tenant="x", amount=Decimal("1e9")
        ).allowed
        is True
    )
    services.grant_create(actor=actor, user=alice)
    assert (
        check_authority(
            user=alice, action_name="issue_refund", tenant="x", amount=Decimal("1e9")
        ).allowed
        is True
    )
    for user in (root, alice):
        user.is_active = False
        user.save()
        refused = check_authority(user=user, action_name="issue_refund", tenant="x", amount=None)
        assert refused.allowed is False
        assert "inactive" in refused.reason
    assert (
        check_authority(
            user=AnonymousUser(), action_name="issue_refund", tenant="x", amount=None
        ).allowed
        is False
    )
    assert (
        check_authority(user=None, action_name="issue_refund", tenant="x", amount=None).allowed
        is False
    )


def test_revoked_grant_no_longer_counts(seeded, actor, alice):
    grant = services.grant_create(actor=actor, user=alice, action_names=["send_email"])
    with time_machine.travel("2025-03-01 12:00:00+00:00", tick=False):
        revoked = services.grant_revoke(actor=actor, grant=grant)
    assert revoked.revoked_at.isoformat() == "2025-03-01T12:00:00+00:00"
    assert revoked.revoked_by == actor
    assert (
        check_authority(user=alice, action_name="send_email", tenant="", amount=None).allowed
        is False
    )
    assert [h.history_type for h in grant.history.order_by("history_id")] == ["+", "~"]
    with pytest.raises(ValidationError, match="revoked"):
        services.grant_update(
            actor=actor, grant=grant, action_names=[], tenants=[], max_amount=None
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one user or one group"),
        ({"user": "alice", "group": "g"}, "exactly one user or one group"),
        ({"user": "alice", "action_names": ["send_fax"]}, "Unknown action type(s): send_fax"),
        ({"user": "alice", "tenants": ["Not A Slug"]}, "tenant slugs"),
        ({"user": "alice", "max_amount": Decimal("-1")}, "greater than or equal to 0"),
    ],
)
def test_grant_authority_validation(seeded, actor, alice, kwargs, message):
    resolved = {
        **kwargs,
        **({"user": alice} if kwargs.get("user") else {}),
        **({"group": GroupFactory(name="g")} if kwargs.get("group") else {}),
    }
    with pytest.raises(ValidationError) as caught:
        services.grant_create(actor=actor, **resolved)
    assert message in " ".join(caught.value.messages)
