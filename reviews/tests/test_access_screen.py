"""A permission change gets a screen of its own: whose access, now and after, for how long,
and who else holds it, from trusted facts (or saying plainly that nothing was verified)."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from policies.seed import seed_policy
from policies.tests.factories import ActionTypeFactory
from reviews.admin.access_screen import NO_PROVIDER, access_context, trusted_access
from reviews.tests.factories import QueueFactory, UserFactory, make_review, role_groups

GRANT = {"user_id": "u-77", "permission": "billing-admin", "change": "grant"}


@pytest.fixture
def trusted_facts():
    """Trusted facts read half a minute ago (on the test's clock); one grant ends in 18 days."""
    now = timezone.now().replace(microsecond=0)
    read_at, until = now - timedelta(seconds=30), now + timedelta(days=18)
    return {
        "source": "iam-directory",
        "read_at": read_at.isoformat(),
        "facts": {"subject_exists": True},
        "details": {
            "subject": "u-77",
            "current_access": ["reports-read", "expenses-submit"],
            "holders": [
                {"user": "u-12", "access": "billing-admin", "until": None},
                {"user": "u-40", "access": "billing-admin", "until": until.isoformat()},
                {"user": "u-77", "access": "reports-read", "until": None},
            ],
        },
        "error": "",
    }


@pytest.fixture
def access_desk(db):
    """The seed catalogue and an access queue worked by one reviewer."""
    seed_policy()
    reviewer = UserFactory(username="remy", groups=[role_groups()["Reviewers"]])
    queue = QueueFactory(slug="access")
    queue.members.add(reviewer)
    return reviewer, queue


def permission_review(queue, *, arguments=GRANT, action_name="change_permission", facts=None):
    policy = {"rule": "permission_changes", "explanation": "Access changes need two approvers"}
    if facts is not None:
        policy["trusted_facts"] = facts
    return make_review(
        queue=queue,
        action_name=action_name,
        target_system="iam",
        arguments=arguments,
        summary="Grant billing-admin to a new finance hire.",
        consequence="Change permission billing-admin for user u-77: grant",
        required_approvals=2,
        policy=policy,
    )


def screen(client, review):
    response = client.get(reverse("admin:reviews_approvalreview_change", args=[review.pk]))
    assert response.status_code == 200
    return response.text


def block(html, css_class, closing="td|p"):
    """The text of the first element with `css_class` in the access block, tags removed."""
    found = re.search(rf'class="[^"]*\b{css_class}\b[^"]*"[^>]*>(.*?)</(?:{closing})>', html, re.S)
    assert found, css_class
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def test_without_trusted_facts_the_screen_says_so_and_never_guesses(client, access_desk):
    reviewer, queue = access_desk
    client.force_login(reviewer)
    html = screen(client, permission_review(queue))
    assert 'id="access-change"' in html
    assert "<h3>The action</h3>" not in html  # not the generic screen
    assert block(html, "hitl-access-subject") == "u-77"
    assert "grant <code>billing-admin</code>" in html
    assert block(html, "hitl-access-duration") == "no end date"
    assert NO_PROVIDER in block(html, "hitl-access-unverified")
    assert NO_PROVIDER in block(html, "hitl-access-holders-unknown")
    # What is requested still shows; nothing claims to know what u-77 holds today.
    assert "billing-admin <span" in html and ">requested</span>" in html
    assert "nobody else" not in html and "already holds" not in html


def test_with_trusted_facts_current_and_requested_access_are_side_by_side(
    client, access_desk, trusted_facts
):
    reviewer, queue = access_desk
    client.force_login(reviewer)
    html = screen(client, permission_review(queue, facts=trusted_facts))
    assert NO_PROVIDER not in html
    read = trusted_facts["read_at"][:19].replace("T", " ")
    assert f"verified</span> from <code>iam-directory</code>, read {read}" in html
    current, after = re.findall(r'<ul class="hitl-access-list">(.*?)</ul>', html, re.S)
    assert re.findall(r"<li[^>]*>([\w-]+)", current) == ["reports-read", "expenses-submit"]
    assert re.findall(r"<li[^>]*>([\w-]+)", after) == [
        "reports-read",
        "expenses-submit",
        "billing-admin",
    ]
    assert ">added</span>" in after
    holders = block(html, "hitl-access-holders", closing="table")
    until = trusted_facts["details"]["holders"][1]["until"][:16].replace("T", " ")
    assert "u-12 no end date" in holders and f"u-40 {until}" in holders
    assert "u-77" not in holders  # the subject is not "someone else"


def test_a_revoke_shows_what_goes_and_a_grant_already_held_says_so(
    client, access_desk, trusted_facts
):
    reviewer, queue = access_desk
    client.force_login(reviewer)
    revoke = {**GRANT, "permission": "reports-read", "change": "revoke"}
    html = screen(client, permission_review(queue, arguments=revoke, facts=trusted_facts))
    assert "<del>reports-read</del>" in html and ">removed</span>" in html
    held = {**GRANT, "permission": "expenses-submit"}
    assert "u-77 already holds expenses-submit." in screen(
        client, permission_review(queue, arguments=held, facts=trusted_facts)
    )


def test_a_failed_fact_provider_is_named_not_hidden(client, access_desk):
    reviewer, queue = access_desk
    client.force_login(reviewer)
    failed = {"source": "iam-directory", "read_at": None, "facts": {}, "error": "timed out"}
    html = screen(client, permission_review(queue, facts=failed))
    assert "not verified: timed out" in block(html, "hitl-access-unverified")
    assert "not verified: timed out" in block(html, "hitl-access-holders-unknown")


def test_for_how_long_comes_from_the_schema_when_it_has_an_end(client, access_desk):
    reviewer, queue = access_desk
    ActionTypeFactory(
        name="grant_role",
        tool_type="permission",
        args_schema={
            "type": "object",
            "properties": {
                "user_id": {"type": "string"},
                "role": {"type": "string"},
                "expires_at": {"type": "string"},
            },
        },
    )
    client.force_login(reviewer)
    ends = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    timed = {"user_id": "u-9", "role": "on-call", "expires_at": ends}
    html = screen(client, permission_review(queue, action_name="grant_role", arguments=timed))
    assert block(html, "hitl-access-duration") == f"until {ends}"
    assert "grant <code>on-call</code>" in html
    open_ended = {"user_id": "u-9", "role": "on-call"}
    html = screen(client, permission_review(queue, action_name="grant_role", arguments=open_ended))
    assert block(html, "hitl-access-duration") == "no end date (expires_at not set)"


def test_other_actions_keep_the_generic_screen(client, access_desk):
    reviewer, queue = access_desk
    client.force_login(reviewer)
    refund = make_review(queue=queue)
    assert access_context(refund) is None
    html = screen(client, refund)
    assert "<h3>The action</h3>" in html and 'id="access-change"' not in html


@pytest.mark.parametrize(
    ("facts", "note"),
    [
        ("a string", NO_PROVIDER),
        ({"source": "iam", "details": "nope"}, "did not say who holds what"),
        ({"source": "iam", "details": {"current_access": "admin"}}, "did not say who holds what"),
    ],
)
def test_malformed_facts_are_not_verified(access_desk, facts, note):
    _reviewer, queue = access_desk
    seen = trusted_access(permission_review(queue, facts=facts))
    assert not seen["verified"] and note in seen["note"]


def test_odd_holders_are_skipped_and_a_foreign_subject_is_flagged(access_desk, trusted_facts):
    _reviewer, queue = access_desk
    facts = {
        **trusted_facts,
        "details": {"subject": "u-78", "current_access": [], "holders": ["u-1", {"user": "u-2"}]},
    }
    context = access_context(permission_review(queue, facts=facts))
    assert context["subject_mismatch"] is True
    assert [h["user"] for h in context["others"]] == ["u-2"]
