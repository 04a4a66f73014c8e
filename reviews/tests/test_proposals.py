"""Proposals of several tool calls at once, through HTTP: each decided by the policy on its
own, all recorded in the run, all or nothing."""

import json

import pytest

from policies.models import PolicyEvaluation
from reviews.models import AgentRun, ReviewRequest, RunCall
from reviews.services.proposals import action_propose

pytestmark = pytest.mark.django_db

ACTIONS = "/api/v1/actions/"


def refund(order="17", amount="20.00", **extra):
    return {
        "name": "issue_refund",
        "target_system": "billing",
        "args": {"order_id": order, "amount": amount, "currency": "EUR"},
        **extra,
    }


def search(query="refund window", **extra):
    return {
        "name": "search_docs",
        "target_system": "knowledge_base",
        "args": {"query": query},
        **extra,
    }


def email(**extra):
    return {
        "name": "send_email",
        "target_system": "mailer",
        "args": {"template_id": "t-1", "customer_id": "c-1"},
        **extra,
    }


def batch(*actions, run_id="run-b", **overrides):
    body = {
        "run_id": run_id,
        "actions": list(actions),
        "summary": "Refund order 17 and tell the customer",
        "confidence": 0.95,
        "estimated_cost_usd": 0.02,
        "facts": {"refund_window_valid": True},
        "checkpoint": {"step": "tools_proposed"},
    }
    body.update(overrides)
    return body


def post(client, body, **headers):
    return client.post(ACTIONS, json.dumps(body), content_type="application/json", **headers)


def test_a_batch_is_decided_call_by_call_and_answered_with_the_run(seeded, agent_client):
    response = post(
        agent_client,
        batch(search(tool_call_id="call_read"), refund(tool_call_id="call_refund")),
    )
    assert response.status_code == 201, response.json()
    run = response.json()
    assert run == agent_client.get("/api/v1/runs/run-b/").json()
    assert (run["status"], run["resumable"], run["checkpoint_version"]) == ("waiting", False, 1)
    read, write = run["calls"]
    assert (read["tool_call_id"], read["outcome"], read["status"]) == (
        "call_read",
        "auto_execute",
        "auto_executed",
    )
    assert read["review_id"] is None and read["executed_by"] == "agent"
    assert read["final_arguments"] == {"query": "refund window"}
    assert read["resume"] == {"action": "execute", "arguments": {"query": "refund window"}}
    assert (write["tool_call_id"], write["outcome"], write["status"]) == (
        "call_refund",
        "human_review",
        "pending",
    )
    assert write["decision"] is None and write["executed_by"] is None
    assert run["pending_reviews"] == [write["review_id"]]
    assert [r["review_id"] for r in run["reviews"]] == [write["review_id"]]
    assert PolicyEvaluation.objects.count() == 2


def test_every_call_of_a_batch_is_kept_in_order(seeded, agent_client):
    body = batch(
        refund(tool_call_id="c1"),
        email(tool_call_id="c2"),
        search(tool_call_id="c3"),
        refund(order="18", tool_call_id="c4"),
    )
    run = post(agent_client, body).json()
    assert [c["tool_call_id"] for c in run["calls"]] == ["c1", "c2", "c3", "c4"]
    assert [c["action"] for c in run["calls"]] == [
        "issue_refund",
        "send_email",
        "search_docs",
        "issue_refund",
    ]
    assert len(run["reviews"]) == 3 == ReviewRequest.objects.count()
    # The run waits on the last reviewed call, as it did on a single proposal's.
    assert AgentRun.objects.get().pending_tool_call["args"]["order_id"] == "18"


def test_a_batch_of_reads_keeps_its_run(seeded, agent_client):
    response = post(agent_client, batch(search(tool_call_id="a"), search("b", tool_call_id="b")))
    assert response.status_code == 200, response.json()
    run = agent_client.get("/api/v1/runs/run-b/").json()
    assert (run["status"], run["resumable"]) == ("running", True)
    assert [c["status"] for c in run["calls"]] == ["auto_executed", "auto_executed"]
    assert run["checkpoint"] == {"step": "tools_proposed"}


def test_one_action_is_answered_as_before_with_its_run(seeded, agent_client):
    body = batch(summary="Search")
    body.pop("actions")
    body["action"] = search(tool_call_id="call_1")
    response = post(agent_client, body)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["outcome"], answer["review"], answer["execution"]) == (
        "auto_execute",
        None,
        None,
    )
    assert answer["run"]["calls"][0]["tool_call_id"] == "call_1"
    # An auto-executed proposal keeps its run: the agent can read it back.
    assert agent_client.get("/api/v1/runs/run-b/").json()["calls"][0]["status"] == "auto_executed"


def test_denied_and_unclear_calls_say_why(seeded, agent_client):
    run = post(
        agent_client,
        batch(
            refund(tool_call_id="late"),
            search(tool_call_id="unsure"),
            facts={"refund_window_valid": False},
            confidence=0.5,
        ),
    ).json()
    denied, unclear = run["calls"]
    assert (denied["outcome"], denied["status"]) == ("deny", "denied")
    assert (unclear["outcome"], unclear["status"]) == ("request_clarification", "denied")
    assert denied["reason"] and denied["resume"] == {"action": "deny", "reason": denied["reason"]}
    assert unclear["executed_by"] is None and unclear["final_arguments"] is None


def test_tool_call_ids_are_unique_in_a_run(seeded, agent_client):
    twice = post(agent_client, batch(refund(tool_call_id="x"), email(tool_call_id="x")))
    assert twice.status_code == 400
    assert "actions" in twice.json()["fields"]
    assert post(agent_client, batch(refund(tool_call_id="x"))).status_code == 201
    again = post(agent_client, batch(search(tool_call_id="y"), email(tool_call_id="x")))
    assert again.status_code == 400
    assert list(again.json()["fields"]) == ["actions[1].tool_call_id"]
    # Nothing of the refused proposals was written; calls without an id never clash.
    assert RunCall.objects.count() == 1 == ReviewRequest.objects.count()
    assert post(agent_client, batch(refund(), refund(order="18"))).status_code == 201
    assert RunCall.objects.count() == 3


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(actions=[]), "actions"),
        (lambda b: b.update(actions=[search()] * 21), "actions"),
        (lambda b: b.update(action=search()), "actions"),
        (lambda b: b.pop("actions"), "actions"),
        (lambda b: b["actions"][1].update(allowed_decisions=["maybe"]), "actions[1]"),
        (lambda b: b["actions"][1].update(allowed_decisions=[]), "actions[1]"),
        (lambda b: b["actions"][1].update(tool_call_id="x" * 201), "actions[1]"),
        (lambda b: b["actions"][1].update(args={"order_id": "17"}), "actions[1].args"),
        (lambda b: b["actions"][1].update(args=[1]), "actions[1].args"),
        (lambda b: b.update(confidence="high"), "confidence"),
        (lambda b: b.update(estimated_cost_usd=-1), "estimated_cost_usd"),
    ],
)
def test_bad_batches_get_field_errors_and_write_nothing(seeded, agent_client, mutate, field):
    body = batch(search(), refund())
    mutate(body)
    response = post(agent_client, body)
    assert response.status_code == 400, response.json()
    error = response.json()
    assert error["error"] == "invalid"
    assert any(name.startswith(field) for name in error["fields"]), error
    assert not AgentRun.objects.exists() and not RunCall.objects.exists()
    assert not PolicyEvaluation.objects.exists()


def test_a_batch_is_written_whole_or_not_at_all(seeded, agent_client):
    # The second refund routes to a queue this tenant does not have: the first one, already
    # decided by the policy, is not kept either.
    seeded["operations"].delete()
    response = post(agent_client, batch(search(tool_call_id="a"), refund(tool_call_id="b")))
    assert response.status_code == 422
    assert not AgentRun.objects.exists() and not RunCall.objects.exists()
    assert not PolicyEvaluation.objects.exists()


def test_confidence_and_cost_may_be_unknown(seeded, agent_client):
    body = batch(search(tool_call_id="r"), refund(tool_call_id="w"))
    body.pop("confidence")
    body["estimated_cost_usd"] = None
    run = post(agent_client, body).json()
    read, write = run["calls"]
    assert read["status"] == "auto_executed"
    # A write whose confidence nobody stated still goes to a person.
    assert write["status"] == "pending"
    packet = run["reviews"][0]
    assert packet["confidence"] is None
    review = ReviewRequest.objects.get()
    assert review.policy["input"]["estimated_cost_usd"] is None


def test_the_review_offers_only_what_the_agent_can_consume(seeded, agent_client):
    run = post(
        agent_client,
        batch(
            refund(tool_call_id="narrow", allowed_decisions=["approve", "reject"]),
            refund(order="18", tool_call_id="answer", answerable=True, description="Refund"),
        ),
    ).json()
    narrow, answerable = (ReviewRequest.objects.get(review_id=c["review_id"]) for c in run["calls"])
    assert "edit" not in narrow.choices and "request_more_evidence" not in narrow.choices
    assert {"approve", "reject"} <= set(narrow.choices)
    assert "respond" in answerable.choices and "respond" not in narrow.choices
    call = RunCall.objects.get(tool_call_id="answer")
    assert (call.answerable, call.description, call.allowed_decisions) == (True, "Refund", [])


def test_a_call_no_review_choice_fits_is_refused(seeded, agent_client):
    response = post(agent_client, batch(refund(allowed_decisions=["respond"])))
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["actions[0].allowed_decisions"]
    assert not ReviewRequest.objects.exists()


def test_a_retried_batch_is_answered_again_not_proposed_twice(seeded, agent_client):
    body = batch(search(tool_call_id="a"), refund(tool_call_id="b"))
    first = post(agent_client, body, HTTP_IDEMPOTENCY_KEY="k-1")
    again = post(agent_client, body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert RunCall.objects.count() == 2


def test_a_finished_run_takes_no_more_proposals(seeded, agent_client):
    assert post(agent_client, batch(search(tool_call_id="a"))).status_code == 200
    finish = agent_client.post("/api/v1/runs/run-b/finish/", {}, format="json")
    assert finish.json()["status"] == "completed"
    refused = post(agent_client, batch(search(tool_call_id="b")))
    assert refused.status_code == 400 and "run_id" in refused.json()["fields"]


def test_programs_propose_batches_through_the_service(seeded, agent_client):
    result = action_propose(
        agent=agent_client.agent,
        proposal={
            "run_id": "run-s",
            "actions": [search(tool_call_id="s"), refund(tool_call_id="r")],
            "summary": "s",
            "confidence": 0.9,
            "estimated_cost_usd": 0,
        },
    )
    assert [c.outcome for c in result.calls] == ["auto_execute", "human_review"]
    assert result.calls[1].review.call == result.calls[1].call
    assert result.run.run_id == "run-s" and result.outcome == "auto_execute"
