"""A packet's resource history: the other reviews of the same order or user, newest first,
with a warning when one went ahead."""

import importlib
import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.urls import reverse

from hitl.kernel import Actor
from reviews.models import ResourceRef
from reviews.selectors import resource_history
from reviews.services import agent_create, review_approve, review_reject
from reviews.services.execution import execution_claim, execution_report
from reviews.services.proposals import action_propose
from reviews.tests.factories import QueueFactory, UserFactory, make_review

pytestmark = pytest.mark.django_db

ORDER_17 = [{"type": "order", "id": "17", "version": "4"}]


@pytest.fixture
def rita(seeded):
    user = UserFactory(username="rita")
    user.user_permissions.add(*Permission.objects.filter(codename="decide_reviewrequest"))
    seeded["operations"].members.add(user)
    return user


@pytest.fixture
def agent(seeded):
    return agent_create(actor=Actor.system("t"), name="bot")[0]


def propose(agent, run_id, order="17", amount="20.00"):
    return action_propose(
        agent=agent,
        proposal={
            "run_id": run_id,
            "action": {
                "name": "issue_refund",
                "target_system": "billing",
                "args": {"order_id": order, "amount": amount, "currency": "EUR"},
            },
            "summary": f"Refund order {order}",
            "confidence": 0.96,
            "affected_resources": [{"type": "order", "id": order, "version": "4"}],
        },
    ).review


def refunded(agent, rita, run_id):
    """A refund of order 17 that was approved and ran."""
    review = propose(agent, run_id)
    review_approve(review_id=review.review_id, reviewer=rita)
    actor = Actor.of_agent(agent)
    execution_claim(review_id=review.review_id, actor=actor, resources=ORDER_17)
    execution_report(review_id=review.review_id, actor=actor, succeeded=True, result={"id": 1})
    return review


def test_an_earlier_refund_of_the_same_order_is_a_warning(agent, rita, clock):
    earlier = refunded(agent, rita, "run-a")
    clock.shift(timedelta(hours=1))
    rejected = propose(agent, "run-b")
    review_reject(review_id=rejected.review_id, reviewer=rita, reason="duplicate")
    elsewhere = propose(agent, "run-c", order="512")
    clock.shift(timedelta(hours=1))
    current = propose(agent, "run-d")

    history = resource_history(review=current)
    assert [h["review_id"] for h in history] == [rejected.review_id, earlier.review_id]
    assert elsewhere.review_id not in {h["review_id"] for h in history}
    newest, oldest = history
    assert (newest["state"], newest["went_ahead"], newest["warning"]) == ("rejected", False, "")
    assert newest["decision"]["choice"] == "reject" and newest["decision"]["reviewer"] == "rita"
    assert oldest["went_ahead"] and oldest["execution"]["state"] == "succeeded"
    assert oldest["resources"] == ["order 17"]
    assert oldest["warning"].startswith("Refund 20.00 EUR to order 17: done on ")
    assert f"(review {earlier.review_id})" in oldest["warning"]
    # Looking back from the earlier review, the later ones are marked as later.
    assert all(h["later"] for h in resource_history(review=earlier))


def test_an_approval_not_run_yet_warns_too(agent, rita):
    approved = propose(agent, "run-a")
    review_approve(review_id=approved.review_id, reviewer=rita)
    (entry,) = resource_history(review=propose(agent, "run-b"))
    assert entry["went_ahead"] and "approved on" in entry["warning"]
    assert "not run yet" in entry["warning"]


def test_history_stays_in_its_tenant_and_is_bounded(agent, clock, django_assert_max_num_queries):
    globex = QueueFactory(slug="operations", tenant="globex")
    make_review(queue=globex, tenant="globex", affected_resources=ORDER_17)
    for n in range(12):
        clock.shift(timedelta(minutes=1))
        propose(agent, f"run-{n}")
    current = propose(agent, "run-last")
    with django_assert_max_num_queries(3):
        history = resource_history(review=current)
    assert len(history) == 10
    assert [h["created_at"] for h in history] == sorted(
        (h["created_at"] for h in history), reverse=True
    )
    assert {h["review_id"] for h in history}.isdisjoint(
        ResourceRef.objects.filter(tenant="globex").values_list("review__review_id", flat=True)
    )


def test_a_review_without_resources_has_no_history(agent, seeded):
    review = make_review(queue=seeded["operations"], affected_resources=[])
    assert resource_history(review=review) == []
    assert not ResourceRef.objects.filter(review=review).exists()


def test_the_screen_warns_and_lists_the_other_reviews(agent, rita, admin_client):
    earlier = refunded(agent, rita, "run-a")
    current = propose(agent, "run-b")
    html = admin_client.get(
        reverse("admin:reviews_approvalreview_change", args=[current.pk])
    ).content.decode()
    assert 'class="messagelist hitl-resource-warnings"' in html
    assert "Already done on the same resource: Refund 20.00 EUR to order 17: done on" in html
    assert 'id="resource-history"' in html and earlier.review_id in html


def test_the_api_packet_has_the_history_and_the_run_list_does_not(agent, rita, admin_client):
    earlier = refunded(agent, rita, "run-a")
    current = propose(agent, "run-b")
    packet = admin_client.get(f"/api/v1/reviews/{current.review_id}/").json()
    (entry,) = packet["resource_history"]
    assert entry["review_id"] == earlier.review_id and entry["went_ahead"]
    assert json.dumps(entry)
    run = admin_client.get("/api/v1/runs/run-b/").json()
    assert run["reviews"][0]["resource_history"] is None


def test_the_migration_fills_the_index_for_existing_reviews(agent, seeded):
    review = make_review(
        queue=seeded["operations"],
        affected_resources=[*ORDER_17, {"type": "customer", "id": "c-1"}, *ORDER_17],
    )
    ResourceRef.objects.all().delete()
    migration = importlib.import_module("reviews.migrations.0011_resource_refs")
    migration.backfill(apps, None)
    refs = ResourceRef.objects.filter(review=review)
    assert sorted(refs.values_list("resource_type", "resource_id")) == [
        ("customer", "c-1"),
        ("order", "17"),
    ]
    assert {ref.created_at for ref in refs} == {review.created_at}
