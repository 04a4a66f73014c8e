"""The review packet the API answers is built directly, not by DRF's walk of its fields:
both must give the same packet for every kind of review, reader and state."""

from datetime import UTC, timedelta, timezone

import pytest
from rest_framework import serializers

from conftest import clock_start
from hitl.kernel import Actor
from reviews.api.serializers import ReviewPacketOut
from reviews.selectors import packet_queryset
from reviews.services import review_decide
from reviews.services.execution import execution_claim
from reviews.tests.factories import QueueFactory, make_review

pytestmark = pytest.mark.django_db

# A month past the test clock's start, given at +02:00: the packet answers it in UTC.
FRESH_UNTIL = (clock_start() + timedelta(days=30)).astimezone(timezone(timedelta(hours=2)))


def generic(review, context=None) -> dict:
    """What DRF's ModelSerializer gives for the same fields."""
    serializer = ReviewPacketOut(review, context=context or {})
    return dict(serializers.ModelSerializer.to_representation(serializer, review))


def both(review, context=None) -> tuple[dict, dict]:
    return dict(ReviewPacketOut(review, context=context or {}).data), generic(review, context)


@pytest.fixture
def reviews(queue, reviewer, reviewer2):
    other_tenant = QueueFactory(slug="operations", tenant="globex")
    other_tenant.members.add(reviewer2)
    fresh = make_review(
        queue=queue,
        evidence=[
            {"id": "order", "title": "Order", "url": "https://shop.example.com/o/1",
             "excerpt": "1x mug", "fresh_until": FRESH_UNTIL.isoformat()},
            {"id": "ticket", "title": "Ticket"},
        ],
        affected_resources=[{"type": "order", "id": "17", "version": "4"}],
        options_considered=["refund", "replace"],
        uncertainty="The photo is blurry.",
    )  # fmt: skip
    approved = make_review(queue=queue, confidence=None)
    review_decide(review_id=approved.review_id, reviewer=reviewer, choice="approve", reason="ok")
    claimed = make_review(queue=queue)
    review_decide(review_id=claimed.review_id, reviewer=reviewer, choice="approve")
    execution_claim(review_id=claimed.review_id, actor=Actor.of_agent(claimed.run.agent))
    rejected = make_review(queue=queue)
    review_decide(review_id=rejected.review_id, reviewer=reviewer, choice="reject", reason="no")
    evidence_asked = make_review(queue=queue, evidence=[])
    review_decide(
        review_id=evidence_asked.review_id,
        reviewer=reviewer,
        choice="request_more_evidence",
        reason="Send the photo.",
    )
    escalation = make_review(queue=queue, kind="escalation", question="Which order?", choices=None)
    globex = make_review(queue=other_tenant, tenant="globex", agent="globex-bot")
    return {
        "fresh": fresh,
        "approved": approved,
        "claimed": claimed,
        "rejected": rejected,
        "evidence_asked": evidence_asked,
        "escalation": escalation,
        "globex": globex,
    }


def test_a_new_review_in_hand_gives_the_packet_drf_gives(reviews):
    fast, slow = both(reviews["fresh"])
    assert fast == slow
    assert list(fast) == list(slow)
    assert fast["evidence"][0]["fresh_until"] == FRESH_UNTIL.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert fast["evidence"][1]["fresh_until"] is None


@pytest.mark.parametrize(
    "name", ["fresh", "approved", "claimed", "rejected", "evidence_asked", "escalation", "globex"]
)
def test_every_state_read_back_gives_the_packet_drf_gives(reviews, name):
    review = packet_queryset().get(pk=reviews[name].pk)
    fast, slow = both(review)
    assert fast == slow
    assert list(fast) == list(slow)


@pytest.mark.parametrize("name", ["fresh", "approved", "escalation", "globex"])
def test_a_persons_packet_gives_what_drf_gives(reviews, reviewer, reviewer2, name):
    person = reviewer2 if name == "globex" else reviewer
    review = packet_queryset().get(pk=reviews[name].pk)
    fast, slow = both(review, {"person": person})
    assert fast == slow
    assert fast["your_choices"] is not None
    assert fast["resource_history"] is not None


def test_decisions_and_execution_are_in_the_packet(reviews, reviewer):
    review = packet_queryset().get(pk=reviews["claimed"].pk)
    fast = ReviewPacketOut(review).data
    assert [d["choice"] for d in fast["decisions"]] == ["approve"]
    assert fast["decisions"][0]["reviewer"] == reviewer.username
    assert fast["execution"]["state"] == "claimed"
    assert fast["confidence"] == 0.96
    approved = packet_queryset().get(pk=reviews["approved"].pk)
    assert ReviewPacketOut(approved).data["confidence"] is None
