"""HITL_DECISION_LOG="deferred": POST /actions/ leaves its auto-executed reads out of the
request's transaction; after the commit they are buffered, handed to the worker as one
task, and the task bulk-inserts them."""

import json
from datetime import timedelta

import pytest
from django.db import transaction

from policies import decision_log
from policies.models import PolicyEvaluation
from policies.selectors import active_version_for
from reviews import tasks
from reviews.services.proposals import action_propose
from reviews.tests.test_proposals import batch, refund, search

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def deferred(settings):
    settings.HITL_DECISION_LOG = "deferred"
    # No timer thread: the test says when the buffer is handed over.
    settings.HITL_DECISION_LOG_SECONDS = 0
    decision_log._buffer.rows.clear()
    yield
    decision_log._buffer.rows.clear()


def queued_log_tasks():
    from django_q.models import OrmQ

    return [t.task["args"] for t in OrmQ.objects.all() if t.task["func"].endswith("log_decisions")]


def test_reads_are_logged_by_the_worker_after_the_commit_and_writes_at_once(
    seeded, agent_key, django_capture_on_commit_callbacks, clock
):
    agent, _key = agent_key
    proposal = batch(search(tool_call_id="c-read"), refund(tool_call_id="c-refund"))
    with django_capture_on_commit_callbacks(execute=True):
        action_propose(agent=agent, proposal=proposal)
        # In the request: the refund's decision only; the read waits for the commit.
        assert list(PolicyEvaluation.objects.values_list("tool_call_id", flat=True)) == ["c-refund"]
        assert decision_log.flush_deferred() == 0
    assert queued_log_tasks() == []
    assert decision_log.flush_deferred() == 1
    [(rows,)] = queued_log_tasks()
    assert [r["tool_call_id"] for r in rows] == ["c-read"]

    clock.shift(timedelta(seconds=30))  # the worker gets to it later
    assert tasks.log_decisions(json.loads(json.dumps(rows))) == 1
    read = PolicyEvaluation.objects.get(tool_call_id="c-read")
    refund_row = PolicyEvaluation.objects.get(tool_call_id="c-refund")
    assert (read.source, read.outcome, read.rule) == (
        "server",
        "auto_execute",
        "reads_auto_execute",
    )
    assert read.version == active_version_for("")
    assert read.actor_label == "agent:refund-bot"
    # It keeps when the server decided; created_at is when the worker wrote it (what the
    # archive export reads, so a late row is not behind an export that passed its decision).
    assert read.decided_at <= refund_row.created_at + timedelta(seconds=1)
    assert read.created_at - read.decided_at >= timedelta(seconds=30)


def test_a_rolled_back_proposal_defers_nothing(
    seeded, agent_key, django_capture_on_commit_callbacks
):
    agent, _key = agent_key
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        action_propose(agent=agent, proposal=batch(search(tool_call_id="c-1")))
        raise RuntimeError("the request failed after deciding")
    assert decision_log.flush_deferred() == 0
    assert not PolicyEvaluation.objects.exists()


def test_the_buffer_hands_over_at_the_batch_size(
    seeded, agent_key, settings, django_capture_on_commit_callbacks
):
    settings.HITL_DECISION_LOG_BATCH = 3
    agent, _key = agent_key
    with django_capture_on_commit_callbacks(execute=True):
        action_propose(
            agent=agent, proposal=batch(*(search(tool_call_id=f"c{i}") for i in range(2)))
        )
    assert queued_log_tasks() == []
    with django_capture_on_commit_callbacks(execute=True):
        action_propose(agent=agent, proposal=batch(search(tool_call_id="c2"), run_id="run-2"))
    [(rows,)] = queued_log_tasks()
    assert [r["tool_call_id"] for r in rows] == ["c0", "c1", "c2"]


def test_a_broker_that_is_down_does_not_lose_the_rows(
    seeded, agent_key, monkeypatch, django_capture_on_commit_callbacks
):
    import django_q.tasks

    def refuse(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(django_q.tasks, "async_task", refuse)
    agent, _key = agent_key
    with django_capture_on_commit_callbacks(execute=True):
        action_propose(agent=agent, proposal=batch(search(tool_call_id="c-1")))
    assert decision_log.flush_deferred() == 1
    assert PolicyEvaluation.objects.get().tool_call_id == "c-1"


def test_rows_nobody_could_take_stay_buffered_for_the_next_flush(
    seeded, agent_key, monkeypatch, django_capture_on_commit_callbacks
):
    import django_q.tasks

    from policies import services

    def refuse(*args, **kwargs):
        raise ConnectionError("unreachable")

    agent, _key = agent_key
    with django_capture_on_commit_callbacks(execute=True):
        action_propose(agent=agent, proposal=batch(search(tool_call_id="c-1")))
    with monkeypatch.context() as down:
        down.setattr(django_q.tasks, "async_task", refuse)
        down.setattr(services, "evaluations_insert", refuse)
        with pytest.raises(ConnectionError):
            decision_log.flush_deferred()
    assert [r["tool_call_id"] for r in decision_log._buffer.rows] == ["c-1"]
    assert decision_log.flush_deferred() == 1
    [(rows,)] = queued_log_tasks()
    assert [r["tool_call_id"] for r in rows] == ["c-1"]


def test_sync_mode_logs_reads_in_the_request(seeded, agent_key, settings):
    settings.HITL_DECISION_LOG = "sync"
    action_propose(agent=agent_key[0], proposal=batch(search(tool_call_id="c-1")))
    assert PolicyEvaluation.objects.get().tool_call_id == "c-1"
    assert decision_log.flush_deferred() == 0


def test_an_unknown_mode_is_refused_by_name(seeded, agent_key, settings):
    settings.HITL_DECISION_LOG = "later"
    with pytest.raises(ValueError, match="HITL_DECISION_LOG must be 'sync' or 'deferred'"):
        action_propose(agent=agent_key[0], proposal=batch(search(tool_call_id="c-1")))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_worker_task_logs_what_committed_requests_deferred(seeded, agent_client):
    from django_q.models import OrmQ

    for i in range(3):
        body = batch(search(tool_call_id=f"c{i}"), run_id=f"run-{i}")
        response = agent_client.post("/api/v1/actions/", body, format="json")
        assert response.status_code == 200, response.json()
    assert not PolicyEvaluation.objects.exists()
    assert decision_log.flush_deferred() == 3
    [queued] = OrmQ.objects.all()
    assert tasks.log_decisions(*queued.task["args"]) == 3
    rows = PolicyEvaluation.objects.order_by("tool_call_id")
    assert [r.tool_call_id for r in rows] == ["c0", "c1", "c2"]
    assert {r.version_id for r in rows} == {active_version_for("").pk}
