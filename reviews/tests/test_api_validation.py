"""Input validation compiled from the serializers (reviews.api.fastpath) gives what a fresh
DRF serializer gives: the same validated data, the same 400."""

import json
from datetime import timedelta

import pytest
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from conftest import clock_start
from reviews.api import fastpath
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
# Blanks, nulls, whitespace and defaults: where DRF trims, keeps, fills in or leaves out.
EDGES = [
    body(thread_id="", consequence="  c  ", content="  kept as sent  ", tenant=""),
    body(confidence=None, estimated_cost_usd=None, facts={}, checkpoint={}),
    body(
        evidence=[{"id": " e ", "title": "T", "url": "", "excerpt": " sent ", "fresh_until": None}],
        affected_resources=[{"type": "order", "id": "17", "version": None}],
    ),
    body(action={"name": " a ", "target_system": "", "args": {}, "tool_call_id": "",
                 "allowed_decisions": ["approve", "reject"], "answerable": True,
                 "description": "   "}),
    body(versions={"agent": "", "model": " m ", "prompt": "p"}, question=" why? ", on_behalf_of=""),
    body(trace={"langsmith_url": "https://smith.example.com/r/1"}, uncertainty="   "),
    # Input DRF coerces (a number for text, "true" for a boolean): DRF's own answer.
    body(summary=17, action={"name": "a", "answerable": "true", "args": {"1": [1, {"a": None}]}}),
]  # fmt: skip


@pytest.mark.parametrize("data", VALID + EDGES)
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
    body(on_behalf_of=None, thread_id=None),
    body(evidence=[None], affected_resources=[{"type": "", "id": "1"}]),
    body(action={"name": "a", "args": [], "allowed_decisions": []}, versions={"agent": "x" * 101}),
    body(summary="nul \x00 byte", question="\ud800"),
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


@pytest.mark.parametrize("data", VALID + EDGES[:-1])
def test_well_formed_bodies_take_the_compiled_checks_alone(data):
    # Ids sent as text, as agents send them (a number is DRF's to turn into text).
    resources = [{**r, "id": str(r["id"])} for r in data.get("affected_resources", [])]
    data = {**data, "affected_resources": resources}
    # Not DRF's fallback: the compiled checks accept them, and give DRF's answer.
    assert fastpath._compiled(ProposalIn)(data) == fresh(data)


def test_input_drf_would_coerce_is_left_to_drf():
    with pytest.raises(fastpath._Declined):
        fastpath._compiled(ProposalIn)(EDGES[-1])
    assert validated(ProposalIn, EDGES[-1])["summary"] == "17"


class _Unusual(serializers.Serializer):
    """Fields DRF reads otherwise than `data.get(name)`: the compiled checks leave the
    whole serializer to DRF."""

    fixed = serializers.HiddenField(default="server's own")
    renamed = serializers.CharField(source="other", required=False)
    text = serializers.CharField(max_length=5)


@pytest.mark.parametrize(
    "data", [{"fixed": "client's", "renamed": " r ", "text": "t"}, {"text": "t"}]
)
def test_fields_drf_reads_otherwise_are_left_to_drf(data):
    expected = _Unusual(data=data)
    expected.is_valid(raise_exception=True)
    assert validated(_Unusual, data) == expected.validated_data
    assert validated(_Unusual, data)["fixed"] == "server's own"
