"""Who may see and decide a review, judged anew at every request: queue membership and
ownership and reviewer grants are read each time, assignment grants nothing. And what a
person is offered is exactly what the decision service accepts from them, with the reason
for what is not offered."""

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from policies.models import ReviewerGrant
from policies.services import (
    grant_create,
    grant_revoke,
    rule_set_publish,
    rule_set_update,
)
from reviews import selectors
from reviews.exceptions import NotAuthorized, ReviewError
from reviews.models import Decision, ReviewRequest, ReviewState
from reviews.services import (
    queue_save,
    review_approve,
    review_assign,
    review_decide,
    review_edit,
    review_escalate,
    review_guide,
    review_reject,
    review_take_over,
)
from reviews.tests.factories import QueueFactory, UserFactory, make_review

PERMS = [
    "view_approvalreview",
    "view_editreview",
    "view_escalationreview",
    "view_reviewrequest",
    "view_agentrun",
    "decide_reviewrequest",
]
OWNER_ONLY = "launch_missiles is not in the action catalogue: only the queue owner may approve it"


def person(username, **kwargs):
    """A staff reviewer who may open the review screens and decide (grant: see factory)."""
    user = UserFactory(username=username, **kwargs)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="reviews", codename__in=PERMS)
    )
    return user


@pytest.fixture
def team(db):
    lead = person("olga")
    rita, remy = person("rita"), person("remy")
    ops = QueueFactory(slug="operations", name="Operations", owner=lead)
    ops.members.add(rita, remy)
    return {"lead": lead, "rita": rita, "remy": remy, "ops": ops}


def review_url(review, suffix="change"):
    name = {"approval": "approvalreview", "edit": "editreview", "escalation": "escalationreview"}
    return reverse(f"admin:reviews_{name[review.kind]}_{suffix}", args=[review.pk])


def api(user):
    client = APIClient()
    client.force_login(user)
    return client


def decide_over_api(client, review, body):
    return client.post(
        f"/api/v1/reviews/{review.review_id}/decisions/",
        json.dumps(body),
        content_type="application/json",
    )


def untouched(review, state=ReviewState.PENDING, decisions=0):
    review.refresh_from_db()
    return review.state == state and review.decisions.count() == decisions


# --- revoking membership revokes seeing and deciding ----------------------------------


@pytest.mark.django_db
def test_a_removed_member_loses_the_review_assigned_to_them(team):
    rita, ops = team["rita"], team["ops"]
    review = make_review(queue=ops)
    review_assign(review_id=review.review_id, actor=rita, assignee=rita)
    assert selectors.available_choices(review=review, user=rita)

    ops.members.remove(rita)

    review.refresh_from_db()
    assert review.assignee == rita  # still assigned: assignment says who works it, only
    assert not selectors.reviews_visible_to(user=rita).filter(pk=review.pk).exists()
    assert not selectors.can_decide(user=rita, review=review)
    assert selectors.available_choices(review=review, user=rita) == []
    assert sum(row["total"] for row in selectors.inbox_counts(user=rita)) == 0
    assert not selectors.sees_whole_run(user=rita, run=review.run)
    with pytest.raises(NotAuthorized):
        review_approve(review_id=review.review_id, reviewer=rita)
    assert untouched(review)

    ops.members.add(rita)  # back in the queue: judged by the new state again
    review_approve(review_id=review.review_id, reviewer=rita)
    assert untouched(review, ReviewState.APPROVED, decisions=1)


def _removed_member_over_the_api(team):
    rita, ops = team["rita"], team["ops"]
    review = make_review(queue=ops)
    review_assign(review_id=review.review_id, actor=rita, assignee=rita)
    client = api(rita)
    assert client.get(f"/api/v1/reviews/{review.review_id}/").status_code == 200
    assert client.get(f"/api/v1/runs/{review.run.run_id}/").status_code == 200

    ops.members.remove(rita)  # between two requests

    assert client.get(f"/api/v1/reviews/{review.review_id}/").status_code == 404
    assert client.get(f"/api/v1/runs/{review.run.run_id}/").status_code == 404
    assert decide_over_api(client, review, {"choice": "approve"}).status_code == 404
    assert untouched(review)
    assert not Decision.objects.exists()


@pytest.mark.django_db
def test_a_removed_member_is_refused_by_the_api(team):
    _removed_member_over_the_api(team)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_removed_member_is_refused_by_the_api_in_autocommit(transactional_db):
    lead = person("olga")
    rita, remy = person("rita"), person("remy")
    ops = QueueFactory(slug="operations", name="Operations", owner=lead)
    ops.members.add(rita, remy)
    _removed_member_over_the_api({"lead": lead, "rita": rita, "remy": remy, "ops": ops})
    connection.close()


@pytest.mark.django_db
def test_a_removed_member_is_refused_by_the_admin(client, team):
    rita, ops = team["rita"], team["ops"]
    review = make_review(queue=ops, summary="Refund the broken kettle")
    review_assign(review_id=review.review_id, actor=rita, assignee=rita)
    client.force_login(rita)
    page = client.get(review_url(review))
    assert page.status_code == 200 and 'value="approve"' in page.text

    ops.members.remove(rita)

    assert client.get(review_url(review)).status_code == 302  # the admin's "doesn't exist"
    inbox = client.get(reverse("admin:reviews_reviewrequest_changelist"))
    assert "Refund the broken kettle" not in inbox.text
    decided = client.post(review_url(review, "decide"), {"choice": "approve"})
    assert decided.status_code == 403
    assert untouched(review)


@pytest.mark.django_db
def test_a_member_who_took_a_case_over_loses_it_when_removed(team):
    rita, lead, ops = team["rita"], team["lead"], team["ops"]
    review = make_review(queue=ops, kind="escalation", confidence=0.4)
    review_take_over(review_id=review.review_id, reviewer=rita)
    review.refresh_from_db()
    assert selectors.available_choices(review=review, user=rita) == [
        "done_by_person",
        "not_needed",
        "guide",
        "reject",
    ]

    ops.members.remove(rita)

    review.refresh_from_db()
    assert selectors.available_choices(review=review, user=rita) == []
    with pytest.raises(NotAuthorized):
        review_guide(review_id=review.review_id, reviewer=rita, reason="carry on")
    assert untouched(review, ReviewState.ESCALATED, decisions=1)
    # The queue's owner still holds the case.
    review_reject(review_id=review.review_id, reviewer=lead, reason="rita left the team")
    assert untouched(review, ReviewState.REJECTED, decisions=2)


# --- ownership moves: the former owner keeps nothing ----------------------------------


@pytest.mark.django_db
def test_a_former_queue_owner_loses_the_escalations_assigned_to_them(client, team):
    lead, rita, ops = team["lead"], team["rita"], team["ops"]
    review = make_review(queue=ops)
    review_escalate(review_id=review.review_id, reviewer=rita, reason="too big for me")
    review.refresh_from_db()
    assert review.assignee == lead  # no escalation owner: the queue's owner gets it
    assert api(lead).get(f"/api/v1/reviews/{review.review_id}/").status_code == 200

    successor = person("otto")
    ops.owner = successor
    queue_save(actor=successor, queue=ops)

    assert api(lead).get(f"/api/v1/reviews/{review.review_id}/").status_code == 404
    assert decide_over_api(api(lead), review, {"choice": "approve"}).status_code == 404
    client.force_login(lead)
    assert client.post(review_url(review, "decide"), {"choice": "approve"}).status_code == 403
    assert untouched(review, ReviewState.ESCALATED, decisions=1)
    with pytest.raises(NotAuthorized):
        review_approve(review_id=review.review_id, reviewer=lead)
    # The new owner decides it, though it is still assigned to the former one.
    response = decide_over_api(api(successor), review, {"choice": "approve"})
    assert response.status_code == 201, response.json()


@pytest.mark.django_db
def test_a_former_escalation_owner_loses_the_escalation(team):
    rita, ops = team["rita"], team["ops"]
    first, second = person("ella"), person("eve")
    ops.escalation_owner = first
    queue_save(actor=team["lead"], queue=ops)
    review = make_review(queue=ops)
    review_escalate(review_id=review.review_id, reviewer=rita, reason="needs finance")
    review.refresh_from_db()
    assert review.assignee == first
    assert "approve" in selectors.available_choices(review=review, user=first)

    ops.escalation_owner = second
    queue_save(actor=team["lead"], queue=ops)

    review.refresh_from_db()
    assert selectors.available_choices(review=review, user=first) == []
    with pytest.raises(NotAuthorized):
        review_approve(review_id=review.review_id, reviewer=first)
    assert untouched(review, ReviewState.ESCALATED, decisions=1)
    review_approve(review_id=review.review_id, reviewer=second)
    assert untouched(review, ReviewState.APPROVED, decisions=2)


@pytest.mark.django_db
def test_an_escalation_owner_sees_the_escalations_only(team):
    ella = person("ella")
    ops = team["ops"]
    ops.escalation_owner = ella
    queue_save(actor=team["lead"], queue=ops)
    pending = make_review(queue=ops)
    escalated = make_review(queue=ops)
    review_escalate(review_id=escalated.review_id, reviewer=team["rita"], reason="finance")
    client = api(ella)
    assert client.get(f"/api/v1/reviews/{pending.review_id}/").status_code == 404
    assert decide_over_api(client, pending, {"choice": "approve"}).status_code == 404
    assert untouched(pending)
    assert list(selectors.reviews_visible_to(user=ella)) == [escalated]
    # Decided, it stays on their screen (the answer to their decision shows it).
    response = decide_over_api(client, escalated, {"choice": "approve"})
    assert (response.status_code, response.json()["state"]) == (201, "approved")
    assert client.get(f"/api/v1/reviews/{escalated.review_id}/").status_code == 200


@pytest.mark.django_db
def test_members_see_who_decides_an_escalated_review(client, team):
    review = make_review(queue=team["ops"])
    review_escalate(review_id=review.review_id, reviewer=team["rita"], reason="too big")
    client.force_login(team["remy"])
    page = client.get(review_url(review)).text
    assert 'value="approve"' not in page
    assert "This review is escalated: olga decides it now" in page


# --- grants: revoking authority revokes the choices -----------------------------------


@pytest.mark.django_db
def test_a_revoked_grant_takes_the_choices_off_the_screen_and_the_api(client, team):
    rita, ops = team["rita"], team["ops"]
    review = make_review(queue=ops)
    client.force_login(rita)
    assert 'value="approve"' in client.get(review_url(review)).text

    for grant in ReviewerGrant.objects.filter(user=rita):
        grant_revoke(actor=team["lead"], grant=grant)

    page = client.get(review_url(review)).text
    # Without a grant the action cannot be let through; stopping or escalating it can.
    assert 'value="approve"' not in page and 'value="reject"' in page
    assert "Not within your authority: no grant lets rita" in page
    response = decide_over_api(api(rita), review, {"choice": "approve"})
    assert (response.status_code, response.json()["error"]) == (403, "not_authorized")
    assert untouched(review)

    grant_create(actor=team["lead"], user=rita, action_names=[], max_amount=Decimal("50"))
    assert 'value="approve"' in client.get(review_url(review)).text
    assert decide_over_api(api(rita), review, {"choice": "approve"}).status_code == 201


# --- only the choices this person may take now -----------------------------------------


@pytest.fixture
def catalogue(db):
    """The seed catalogue and policy (issue_refund's amount is at `amount`)."""
    from policies.seed import seed_policy

    return seed_policy()


@pytest.mark.django_db
def test_a_refund_above_the_limit_offers_no_approval(client, team, catalogue):
    limited = person("lena", grant=False)
    team["ops"].members.add(limited)
    grant_create(
        actor=team["lead"], user=limited, action_names=["issue_refund"], max_amount=Decimal("100")
    )
    big = make_review(
        queue=team["ops"],
        choices=["approve", "edit", "reject", "request_more_evidence", "escalate"],
        arguments={"order_id": "17", "amount": "500.00", "currency": "EUR"},
    )
    assert selectors.available_choices(review=big, user=limited) == [
        "reject",
        "request_more_evidence",
        "escalate",
    ]
    client.force_login(limited)
    page = client.get(review_url(big)).text
    assert 'value="approve"' not in page and 'value="edit"' not in page
    assert "Not offered to you" in page
    assert "no grant lets lena decide issue_refund for the default tenant up to 500.00" in page

    with pytest.raises(NotAuthorized, match=r"up to 500\.00"):
        review_approve(review_id=big.review_id, reviewer=limited)
    # Cutting the amount down is not theirs to decide either: the case is above them.
    with pytest.raises(NotAuthorized, match=r"up to 500\.00"):
        review_edit(
            review_id=big.review_id,
            reviewer=limited,
            arguments={"order_id": "17", "amount": "50.00", "currency": "EUR"},
        )
    assert untouched(big)
    # What is offered is taken: someone who may not approve it passes it on.
    review_escalate(review_id=big.review_id, reviewer=limited, reason="above my limit")
    assert untouched(big, ReviewState.ESCALATED, decisions=1)


def _propose_unknown(seeded_queue_owner_client, run_id="run-missiles"):
    return seeded_queue_owner_client.post(
        "/api/v1/actions/",
        json.dumps(
            {
                "run_id": run_id,
                "action": {"name": "launch_missiles", "target_system": "silo", "args": {"n": 1}},
                "summary": "Launch",
                "confidence": 0.96,
                "estimated_cost_usd": 0.02,
            }
        ),
        content_type="application/json",
    )


@pytest.fixture
def agent_api(db):
    from hitl.kernel import Actor
    from reviews.services import agent_create

    _, key = agent_create(actor=Actor.system("test"), name="rogue-bot")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.mark.django_db
def test_an_unknown_action_is_the_queue_owners_to_approve(client, team, catalogue, agent_api):
    proposed = _propose_unknown(agent_api)
    assert proposed.status_code == 201, proposed.json()
    body = proposed.json()
    assert body["policy"]["escalate_to"] == "queue_owner"
    assert OWNER_ONLY in body["policy"]["explanation"]
    review = ReviewRequest.objects.get(review_id=body["review"]["review_id"])
    assert review.queue == team["ops"]

    rita = team["rita"]
    assert selectors.available_choices(review=review, user=rita) == [
        "reject",
        "request_more_evidence",
        "escalate",
    ]
    client.force_login(rita)
    page = client.get(review_url(review)).text
    assert 'value="approve"' not in page
    assert OWNER_ONLY in page
    response = decide_over_api(api(rita), review, {"choice": "approve"})
    assert response.status_code == 403
    assert OWNER_ONLY in response.json()["detail"]
    assert untouched(review)

    lead = team["lead"]
    assert "approve" in selectors.available_choices(review=review, user=lead)
    client.force_login(lead)
    assert 'value="approve"' in client.get(review_url(review)).text
    assert decide_over_api(api(lead), review, {"choice": "approve"}).status_code == 201


@pytest.mark.django_db
def test_an_unknown_action_is_refused_when_the_policy_denies_them(team, catalogue, agent_api):
    rule_set = catalogue.rule_set
    rule_set_update(actor=team["lead"], rule_set=rule_set, fields={"unknown_action": "deny"})
    rule_set_publish(actor=team["lead"], rule_set=catalogue.rule_set)
    response = _propose_unknown(agent_api)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["outcome"], body["review"]) == ("deny", None)
    assert "launch_missiles is not in the action catalogue" in body["policy"]["explanation"]
    assert "denies actions it does not know" in body["policy"]["explanation"]
    assert not ReviewRequest.objects.exists()


@pytest.mark.django_db
def test_a_review_recorded_with_a_failed_catalogue_check_is_owner_only(team):
    # Opened before decisions said escalate_to: the failed check alone is enough.
    review = make_review(
        queue=team["ops"],
        action_name="launch_missiles",
        policy={
            "outcome": "human_review",
            "checks": [{"name": "known_action_type", "passed": False, "detail": "unknown"}],
        },
    )
    with pytest.raises(NotAuthorized, match=OWNER_ONLY):
        review_approve(review_id=review.review_id, reviewer=team["rita"])
    assert untouched(review)
    review_approve(review_id=review.review_id, reviewer=team["lead"])
    assert untouched(review, ReviewState.APPROVED, decisions=1)


# --- offered == accepted, for everyone on every kind of review ---------------------------


class _Rollback(Exception):
    pass


def _accepted(review, user, choice) -> bool:
    """Whether the service takes this choice from this person now (rolled back after)."""
    arguments = None
    if choice == "edit":
        arguments = {**review.arguments, "amount": "10.00"}
        if review.action_name == "launch_missiles":
            arguments = {"n": 2}
    # Marked as Django's TestCase marks its own blocks: the decision service is durable (a
    # top-level transaction) and this block only stands in for the test's rollback.
    attempt = transaction.atomic()
    attempt._from_testcase = True
    try:
        with attempt:
            review_decide(
                review_id=review.review_id,
                reviewer=user,
                choice=choice,
                reason="because",
                arguments=arguments,
            )
            raise _Rollback
    except _Rollback:
        return True
    except ReviewError:
        return False


@pytest.mark.django_db
def test_what_is_offered_is_exactly_what_the_service_accepts(team, catalogue, agent_api):
    lead, rita, remy, ops = team["lead"], team["rita"], team["remy"], team["ops"]
    limited = person("lena", grant=False)
    ops.members.add(limited)
    grant_create(actor=lead, user=limited, action_names=["issue_refund"], max_amount=100)
    outsider, boss = person("oscar"), person("root", is_superuser=True)
    gone = person("gus")
    ops.members.add(gone)
    approval = ["approve", "edit", "reject", "request_more_evidence", "escalate"]
    refund = {"order_id": "17", "currency": "EUR"}

    small = make_review(queue=ops, choices=approval, arguments={**refund, "amount": "20.00"})
    big = make_review(queue=ops, choices=approval, arguments={**refund, "amount": "500.00"})
    assigned = make_review(queue=ops, choices=approval, arguments={**refund, "amount": "20.00"})
    review_assign(review_id=assigned.review_id, actor=gone, assignee=gone)
    ops.members.remove(gone)
    escalated = make_review(queue=ops, choices=approval, arguments={**refund, "amount": "20.00"})
    review_escalate(review_id=escalated.review_id, reviewer=rita, reason="unsure")
    taken = make_review(queue=ops, kind="escalation")
    review_take_over(review_id=taken.review_id, reviewer=remy)
    two = make_review(queue=ops, required_approvals=2, arguments={**refund, "amount": "20.00"})
    unknown = ReviewRequest.objects.get(
        review_id=_propose_unknown(agent_api).json()["review"]["review_id"]
    )
    mine = make_review(queue=ops, proposed_by_user=rita)

    reviews = [small, big, assigned, escalated, taken, two, unknown, mine]
    people = [lead, rita, remy, limited, outsider, boss, gone]
    seen = {True: 0, False: 0}
    for review in reviews:
        for user in people:
            review.refresh_from_db()
            offered = set(selectors.available_choices(review=review, user=user))
            for choice in review.choices:
                accepted = _accepted(review, user, choice)
                seen[accepted] += 1
                assert (choice in offered) == accepted, (
                    review.summary,
                    review.action_name,
                    review.state,
                    user.username,
                    choice,
                )
    assert seen[True] > 20 and seen[False] > 20  # the matrix really has both answers


@pytest.mark.django_db
def test_a_member_without_a_grant_for_the_action_can_still_stop_it(team, catalogue, agent_api):
    # Nobody holds a grant for an action missing from the catalogue: it must not be stuck.
    refunds_only = UserFactory(username="ron", grant=False)
    grant_create(actor=team["lead"], user=refunds_only, action_names=["issue_refund"])
    team["ops"].members.add(refunds_only)
    review = ReviewRequest.objects.get(
        review_id=_propose_unknown(agent_api).json()["review"]["review_id"]
    )
    assert selectors.available_choices(review=review, user=refunds_only) == [
        "reject",
        "request_more_evidence",
        "escalate",
    ]
    review_reject(review_id=review.review_id, reviewer=refunds_only, reason="Not our action")
    assert untouched(review, ReviewState.REJECTED, decisions=1)
