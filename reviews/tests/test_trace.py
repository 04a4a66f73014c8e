"""The run trace beside the decision: the run as it happened, in time order, with the
link to the agent's own trace."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from hitl.kernel import Actor
from reviews.selectors import packet_queryset, run_trace
from reviews.services import agent_create, review_approve, review_reject, run_finish
from reviews.services.execution import execution_claim, execution_report
from reviews.services.proposals import action_propose
from reviews.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LANGSMITH = "https://smith.langchain.com/o/acme/projects/p/support/r/1f0c2c1e-5b7e"
OTEL = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def rita(seeded):
    user = UserFactory(username="rita")
    user.user_permissions.add(*Permission.objects.filter(codename="decide_reviewrequest"))
    seeded["operations"].members.add(user)
    return user


@pytest.fixture
def agent(seeded):
    return agent_create(actor=Actor.system("t"), name="bot")[0]


def refund(**overrides):
    return {
        "run_id": "run-17",
        "action": {
            "name": "issue_refund",
            "target_system": "billing",
            "args": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
        },
        "summary": "Refund a damaged mug",
        "confidence": 0.96,
        "facts": {"refund_window_valid": True},
        "affected_resources": [{"type": "order", "id": "17", "version": "4"}],
        "trace": {"langsmith_url": LANGSMITH, "otel_trace_id": OTEL},
        **overrides,
    }


def trace_of(review):
    return run_trace(packet_queryset().get(pk=review.pk))


def test_the_trace_is_the_run_as_it_happened_in_time_order(agent, rita, clock):
    review = action_propose(agent=agent, proposal=refund()).review
    clock.shift(timedelta(minutes=7))
    review_approve(review_id=review.review_id, reviewer=rita, reason="Photo shows the mug.")
    clock.shift(timedelta(minutes=1))
    actor = Actor.of_agent(agent)
    execution_claim(
        review_id=review.review_id,
        actor=actor,
        resources=[{"type": "order", "id": "17", "version": "4"}],
    )
    clock.shift(timedelta(seconds=30))
    execution_report(
        review_id=review.review_id, actor=actor, succeeded=True, result={"refund_id": "rf_1"}
    )
    clock.shift(timedelta(minutes=1))
    run_finish(run_id="run-17", agent=agent)

    trace = trace_of(review)
    kinds = [(entry["kind"], entry.get("status") or entry.get("state")) for entry in trace]
    assert kinds == [
        ("input", None),
        ("proposal", None),
        ("policy", None),
        ("decision", None),
        ("run", "resumable"),  # the approval lets the agent go on
        ("execution", "claimed"),
        ("execution", "succeeded"),
        ("run", "completed"),
    ]
    times = [entry["at"] for entry in trace]
    assert times == sorted(times)
    input_, proposal, policy, decision, _, claimed, finished, _ = trace.entries
    assert input_["text"] == "Refund a damaged mug" and input_["who"] == "bot"
    assert input_["at"] == review.created_at
    assert proposal["text"].startswith("issue_refund(") and "order_id='17'" in proposal["text"]
    assert proposal["claimed_facts"] == [("refund_window_valid", True)]
    assert policy["text"] == "human review by rule writes_need_review"
    assert decision["who"] == "rita" and decision["detail"] == "Photo shows the mug."
    assert decision["at"] - review.created_at >= timedelta(minutes=7)
    assert (claimed["title"], finished["title"]) == ("Execution", "Result")
    assert finished["state"] == "succeeded" and "rf_1" in finished["detail"]
    assert finished["at"] > claimed["at"] > decision["at"]


def test_the_policy_entry_names_the_trusted_facts(agent, tmp_path, monkeypatch):
    from policies.models import ActionType
    from policies.services import action_type_update

    monkeypatch.setenv("HITL_FAKE_PAYMENTS_FILE", str(tmp_path / "payments.json"))
    action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name="issue_refund"),
        fields={"fact_provider": "examples.refund_agent.payments.refund_facts"},
    )
    review = action_propose(agent=agent, proposal=refund(facts={"order_exists": False})).review
    # The ledger knows order 17: the claim of the opposite lost.
    assert review is not None
    policy = next(e for e in trace_of(review) if e["kind"] == "policy")
    assert policy["trusted"]["source"] == "payments ledger"
    order_exists = next(f for f in policy["facts"] if f["name"] == "order_exists")
    assert order_exists["trusted"] is True and order_exists["differs"]


def test_a_rejection_and_the_agents_later_proposal_are_in_the_trace(agent, rita, clock):
    review = action_propose(agent=agent, proposal=refund()).review
    clock.shift(timedelta(minutes=2))
    review_reject(review_id=review.review_id, reviewer=rita, reason="Order was refunded already.")
    clock.shift(timedelta(minutes=2))
    # The agent resumes the run with another call.
    action_propose(agent=agent, proposal=refund(summary="Send an apology instead"))
    trace = trace_of(review)
    decision = next(e for e in trace if e["kind"] == "decision")
    assert decision["choice"] == "reject"
    statuses = [e["status"] for e in trace if e["kind"] == "run"]

    assert statuses == ["resumable", "waiting"]
    assert not [e for e in trace if e["kind"] == "execution"]


def test_the_screen_renders_the_trace_with_the_agents_own_trace_link(agent, admin_client):
    review = action_propose(agent=agent, proposal=refund()).review
    html = admin_client.get(
        reverse("admin:reviews_approvalreview_change", args=[review.pk])
    ).content.decode()
    assert 'id="run-trace"' in html
    assert f'<a href="{LANGSMITH}" target="_blank" rel="noopener noreferrer">LangSmith run</a>' in (
        html
    )
    assert f'<code class="hitl-otel-trace-id">{OTEL}</code>' in html
    for kind in ("input", "proposal", "policy"):
        assert f'class="hitl-trace-{kind}"' in html
    assert "human review by rule writes_need_review" in html
    assert review.created_at.strftime("%Y-%m-%d %H:%M:%S") in html


def test_the_agents_trace_is_kept_in_the_packet(agent, admin_client):
    review = action_propose(agent=agent, proposal=refund()).review
    assert review.policy["agent_trace"] == {"langsmith_url": LANGSMITH, "otel_trace_id": OTEL}
    packet = admin_client.get(f"/api/v1/reviews/{review.review_id}/").json()
    assert packet["policy"]["agent_trace"] == {"langsmith_url": LANGSMITH, "otel_trace_id": OTEL}
    # Without a trace, none is shown.
    other = action_propose(agent=agent, proposal=refund(run_id="run-18", trace=None)).review
    assert "agent_trace" not in other.policy
    assert run_trace(other).agent_trace == {}


@pytest.mark.parametrize(
    ("trace", "field"),
    [
        ({"langsmith_url": "http://smith.langchain.com/r/1"}, "trace.langsmith_url"),
        ({"langsmith_url": "javascript:alert(1)"}, "trace.langsmith_url"),
        ({"otel_trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"}, "trace.otel_trace_id"),
        ({"otel_trace_id": "0" * 32}, "trace.otel_trace_id"),
        ({"otel_trace_id": "abc"}, "trace.otel_trace_id"),
    ],
)
def test_a_bad_trace_is_a_400_naming_the_field(agent_client, seeded, trace, field):
    response = agent_client.post(
        "/api/v1/actions/", json.dumps(refund(trace=trace)), content_type="application/json"
    )
    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"], response.json()


@pytest.mark.parametrize(
    ("trace", "field"),
    [
        ("https://smith.langchain.com/r/1", "trace"),
        ({"langsmith_url": "ftp://x/y"}, "trace.langsmith_url"),
        ({"otel_trace_id": 12}, "trace.otel_trace_id"),
        ({"jaeger": "x"}, "trace"),
    ],
)
def test_the_service_refuses_a_bad_trace_too(agent, trace, field):
    from reviews.exceptions import InvalidReviewInput

    with pytest.raises(InvalidReviewInput) as refused:
        action_propose(agent=agent, proposal=refund(trace=trace))
    assert field in refused.value.field_errors
