"""Input validation with serializers built once per process (reviews.api.fastpath) gives
what a fresh DRF serializer gives: the same validated data, the same 400."""

import json
from datetime import timedelta

import pytest
from rest_framework.exceptions import ValidationError

from conftest import clock_start
from reviews.api.errors import api_exception_handler
from reviews.api.fastpath import validated
from reviews.api.serializers import ProposalIn, RunWaitIn

# A month past the test clock's start, so the evidence is fresh whatever the date.
FRESH_UNTIL = (clock_start() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")

pytestmark = pytest.mark.django_db


def fresh(data) -> dict:
    serializer = ProposalIn(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def body(**overrides):
    proposal = {
        "run_id": "  run-1 ",
        "action": {"name": "issue_refund", "args": {"order_id": "17", "n": None}},
        "summary": "Refund order 17",
        "confidence": 1,
        "estimated_cost_usd": 0.02,
        "evidence": [{"id": "order", "title": "Order", "fresh_until": FRESH_UNTIL}],
        "affected_resources": [{"type": "order", "id": 17}],
    }
    proposal.update(overrides)
    return proposal


VALID = [
    body(),
    body(versions={"agent": "a/1"}, trace={"otel_trace_id": "0" * 31 + "1"}),
    body(action=None, actions=[{"name": "a", "tool_call_id": "1"}, {"name": "b"}]),
    body(checkpoint={"step": 3}, audience="external", options_considered=[" x "]),
]
VALID[2].pop("action")


@pytest.mark.parametrize("data", VALID)
def test_valid_bodies_give_what_a_fresh_serializer_gives(data):
    assert validated(ProposalIn, data) == fresh(data)
    assert json.dumps(validated(ProposalIn, data), default=str) == json.dumps(
        fresh(data), default=str
    )


INVALID = [
    body(summary="   "),
    body(confidence=2),
    body(estimated_cost_usd="0.00001"),
    body(evidence=[{"id": "order"}], affected_resources="order 17"),
    body(actions=[{"name": "b"}]),
    body(action=None, actions=[{"name": "a", "tool_call_id": "1"}] * 2),
    body(trace={"langsmith_url": "http://smith.example.com/r/1", "otel_trace_id": "0" * 32}),
    ["not", "an", "object"],
]  # fmt: skip
INVALID[5].pop("action")


def answer(exc: ValidationError) -> dict:
    return api_exception_handler(exc, {}).data


@pytest.mark.parametrize("data", INVALID)
def test_invalid_bodies_get_the_same_400_as_a_fresh_serializer(data):
    with pytest.raises(ValidationError) as ours:
        validated(ProposalIn, data)
    with pytest.raises(ValidationError) as drf:
        fresh(data)
    assert answer(ours.value) == answer(drf.value)
    assert answer(ours.value)["error"] == "invalid"
    assert answer(ours.value)["fields"]


def test_a_refused_body_leaves_nothing_behind_for_the_next():
    with pytest.raises(ValidationError):
        validated(ProposalIn, body(summary="", run_id=""))
    data = validated(ProposalIn, body())
    assert data["run_id"] == "run-1"
    assert data["summary"] == "Refund order 17"
    assert "versions" in data and data["versions"] == {}


def test_query_parameters_are_validated_the_same_way():
    from django.http import QueryDict

    assert validated(RunWaitIn, QueryDict("wait=2.5")) == {"wait": 2.5}
    assert validated(RunWaitIn, QueryDict("")) == {"wait": 0}
    with pytest.raises(ValidationError):
        validated(RunWaitIn, QueryDict("wait=99"))
