"""What one proposal writes, and how few statements it takes: the run created in one
INSERT (safe when the same run_id arrives twice at once), the decision log naming the
version that decided, the answer built from the rows just written."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hitl.kernel import Actor
from policies.models import PolicyActivation, PolicyEvaluation
from reviews.exceptions import InvalidReviewInput
from reviews.models import AgentRun, ReviewRequest, RunCall, RunStatus
from reviews.services import agent_create
from reviews.services.proposals import action_propose
from reviews.tests.concurrency import run_together

ACTIONS = "/api/v1/actions/"


def proposal(run_id="run-w", order="17", **extra):
    return {
        "run_id": run_id,
        "action": {
            "name": "issue_refund",
            "target_system": "billing",
            "args": {"order_id": order, "amount": "20.00", "currency": "EUR"},
            **extra.pop("action", {}),
        },
        "summary": f"Refund order {order}",
        "confidence": 0.96,
        "facts": {"refund_window_valid": True},
        "evidence": [{"id": "ticket", "title": "Ticket", "excerpt": "It arrived broken"}],
        "affected_resources": [{"type": "order", "id": order, "version": "1"}],
        "versions": {"agent": "bot/1", "model": "m", "prompt": "p"},
        **extra,
    }


def post(client, body):
    return client.post(ACTIONS, json.dumps(body), content_type="application/json")


@pytest.mark.django_db
def test_a_new_runs_proposal_writes_without_savepoints_or_reads_back(seeded, agent_client):
    # The first proposal compiles the policy (its snapshot is read once per process).
    assert post(agent_client, proposal(run_id="run-first")).status_code == 201
    with CaptureQueriesContext(connection) as queries:
        answer = post(agent_client, proposal())
    assert answer.status_code == 201, answer.content
    statements = [q["sql"] for q in queries.captured_queries]
    # One savepoint: the request's own transaction, nested in the test's.
    assert len([s for s in statements if s.upper().startswith("SAVEPOINT")]) == 1, statements
    # Neither the version's id (read with the activation) nor the calls just written.
    assert not [s for s in statements if 'FROM "policies_policyversion"' in s], statements
    assert not [s for s in statements if 'FROM "reviews_runcall"' in s], statements
    assert not [s for s in statements if 'FROM "reviews_agentrun"' in s], statements
    run = AgentRun.objects.get(run_id="run-w")
    started = run.history.get()
    assert (started.history_type, started.history_actor, started.history_user) == (
        "+",
        "agent:refund-bot",
        None,
    )
    assert started.history_change_reason == "run started, paused for a review of issue_refund"
    assert started.status == RunStatus.WAITING


@pytest.mark.django_db
def test_the_answer_for_a_new_run_is_the_run_as_it_reads_back(seeded, agent_client):
    answer = post(agent_client, proposal(action={"tool_call_id": "call-1"})).json()
    read = agent_client.get("/api/v1/runs/run-w/").json()
    assert answer["run"]["calls"] == read["calls"]
    assert answer["run"]["calls"][0]["tool_call_id"] == "call-1"
    assert answer["run"]["calls"][0]["review_id"] == answer["review"]["review_id"]
    assert {k: v for k, v in answer["run"].items() if k != "reviews"} == {
        k: v for k, v in read.items() if k != "reviews"
    }


@pytest.mark.django_db
def test_the_decision_log_names_the_version_that_decided(seeded, agent_client):
    assert post(agent_client, proposal()).status_code == 201
    active = PolicyActivation.objects.get(tenant="").version
    logged = PolicyEvaluation.objects.get()
    assert logged.version_id == active.pk
    assert logged.decision["policy_version"] == active.content_hash


@pytest.mark.django_db
def test_a_second_proposal_goes_into_the_existing_run(seeded, agent_client):
    assert post(agent_client, proposal(order="17")).status_code == 201
    answer = post(agent_client, proposal(order="18"))
    assert answer.status_code == 201, answer.content
    run = AgentRun.objects.get(run_id="run-w")
    assert RunCall.objects.filter(run=run).count() == 2
    body = answer.json()["run"]
    assert [len(body["calls"]), len(body["reviews"])] == [2, 2]
    assert run.history.latest().history_change_reason == "paused for a review of issue_refund"
    # An existing run keeps its versions: what only a new run would store is not checked.
    third = action_propose(
        agent=agent_client.agent, proposal=proposal(order="19", versions={"agent": "x" * 500})
    )
    assert (third.new_run, third.run.pk, third.run.agent_version) == (False, run.pk, "bot/1")


@pytest.mark.django_db
def test_a_new_run_with_an_overlong_version_is_refused_and_nothing_is_written(seeded):
    agent, _key = agent_create(actor=Actor.system("test"), name="refund-bot")
    with pytest.raises(InvalidReviewInput) as refused:
        action_propose(agent=agent, proposal=proposal(versions={"agent": "x" * 500}))
    assert "agent_version" in refused.value.field_errors
    assert not AgentRun.objects.exists()
    assert not ReviewRequest.objects.exists()
    assert not PolicyEvaluation.objects.exists()


@pytest.mark.django_db
def test_another_agents_run_id_is_refused(seeded, agent_client):
    assert post(agent_client, proposal()).status_code == 201
    other, _key = agent_create(actor=Actor.system("test"), name="other-bot")
    with pytest.raises(InvalidReviewInput) as refused:
        action_propose(agent=other, proposal=proposal(order="18"))
    assert refused.value.field_errors == {
        "run_id": ["This run belongs to another agent or tenant."]
    }
    assert ReviewRequest.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_new_run_proposed_twice_at_once_is_created_once():
    from policies.seed import seed_policy
    from reviews.tests.factories import QueueFactory

    seed_policy()
    QueueFactory(slug="operations", name="Operations")
    agent, _key = agent_create(actor=Actor.system("test"), name="refund-bot")
    workers = [
        (lambda order=order: action_propose(agent=agent, proposal=proposal(order=str(order))))
        for order in range(6)
    ]
    results = run_together(workers)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(result.new_run for result in results) == 1
    run = AgentRun.objects.get(run_id="run-w")
    assert RunCall.objects.filter(run=run).count() == 6
    assert ReviewRequest.objects.filter(run=run).count() == 6
    assert run.history.filter(history_type="+").count() == 1


@pytest.mark.django_db
def test_rows_written_with_their_history_in_one_statement_match_simple_history(
    seeded, agent_client
):
    answer = post(agent_client, proposal(action={"tool_call_id": "call-1"})).json()
    review = ReviewRequest.objects.get(review_id=answer["review"]["review_id"])
    call = RunCall.objects.get(review=review)
    (called,) = call.history.all()
    assert (called.history_type, called.history_actor, called.history_user) == (
        "+",
        "agent:refund-bot",
        None,
    )
    assert called.history_change_reason == "proposed"
    assert (called.tool_call_id, called.args, called.run_id, called.review_id) == (
        "call-1",
        call.args,
        call.run_id,
        review.pk,
    )
    (opened,) = review.history.all()
    assert (opened.history_type, opened.history_actor, opened.state, opened.review_id) == (
        "+",
        "agent:refund-bot",
        "pending",
        review.review_id,
    )
    assert opened.history_change_reason == "created by agent:refund-bot: issue_refund"
    (evidence,) = review.evidence.all()
    (supplied,) = evidence.history.all()
    assert (supplied.history_change_reason, supplied.excerpt, supplied.review_id) == (
        "supplied with the proposal",
        "It arrived broken",
        review.pk,
    )


@pytest.mark.django_db
def test_insert_with_history_stamps_the_person_who_acted(seeded, reviewer):
    from hitl.kernel.history import insert_with_history
    from reviews.models import Evidence
    from reviews.tests.factories import make_review

    review = make_review(queue=seeded["operations"])
    actor = Actor.of_user(reviewer)
    rows = [
        Evidence(review=review, position=position, evidence_id=f"e{position}", title="T")
        for position in (5, 6)
    ]
    written = insert_with_history(rows, actor=actor, reason="supplied by hand")
    assert [row.pk for row in written] == sorted(row.pk for row in written)
    assert all(row.pk and not row._state.adding for row in written)
    for row in written:
        (history,) = row.history.all()
        assert (history.history_user, history.history_actor, history.evidence_id) == (
            reviewer,
            actor.label,
            row.evidence_id,
        )
        assert history.history_change_reason == "supplied by hand"
