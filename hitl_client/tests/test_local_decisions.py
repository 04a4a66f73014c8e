"""LocalDecider against the real platform (live server): reads decided in process and
logged in batches, reviews proposed to the platform, the policy refreshed by ETag."""

import time

import pytest

from hitl_client import HitlClient, LocalDecider, LocalPolicy

# The live server answers on the real clock; the log's thread flushes on it too.
pytestmark = pytest.mark.real_clock


def search(call_id, query="refund window"):
    return {
        "action": {
            "name": "search_docs",
            "target_system": "knowledge_base",
            "args": {"query": query},
            "tool_call_id": call_id,
        },
        "confidence": 0.9,
        "estimated_cost_usd": 0.01,
    }


REFUND = {
    "run_id": "run-refund",
    "action": {
        "name": "issue_refund",
        "target_system": "billing",
        "args": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
        "tool_call_id": "call-refund",
    },
    "summary": "Refund order 17",
    "confidence": 0.95,
    "estimated_cost_usd": 0.02,
    "facts": {"refund_window_valid": True},
}


@pytest.fixture
def client(transactional_db, live_server):
    from hitl.kernel import Actor
    from policies.seed import seed_policy
    from reviews.services import agent_create
    from reviews.tests.factories import QueueFactory

    seed_policy()
    QueueFactory(slug="operations")
    QueueFactory(slug="access")
    _, key = agent_create(actor=Actor.system("test"), name="local-bot")
    return HitlClient(live_server.url, key, timeout=10)


@pytest.fixture
def decider(client):
    # Long intervals: each test flushes and refreshes when it means to.
    decider = LocalDecider(client, refresh_seconds=0, flush_seconds=60)
    yield decider
    decider.close()


def logged():
    from policies.models import PolicyEvaluation

    return list(
        PolicyEvaluation.objects.filter(source="local")
        .order_by("tool_call_id")
        .values_list("tool_call_id", "outcome", "rule")
    )


def test_reads_are_decided_in_process_and_logged_in_one_batch(decider):
    from reviews.models import AgentRun

    answers = [decider.propose(search(f"call-{i}")) for i in range(3)]
    assert {a["outcome"] for a in answers} == {"auto_execute"}
    assert all(a["local"] for a in answers)
    assert answers[0]["policy"]["rule"] == "reads_auto_execute"
    assert not AgentRun.objects.exists()
    assert logged() == []
    assert decider.log.pending == 3

    decider.flush()
    assert decider.log.pending == 0 and decider.log.logged == 3
    assert logged() == [(f"call-{i}", "auto_execute", "reads_auto_execute") for i in range(3)]


def test_a_call_for_a_person_goes_to_the_platform(decider):
    from reviews.models import ReviewRequest

    answer = decider.propose(REFUND)
    assert answer["outcome"] == "human_review"
    assert "local" not in answer
    review = ReviewRequest.objects.get(review_id=answer["review"]["review_id"])
    assert (review.action_name, review.state) == ("issue_refund", "pending")
    assert decider.log.pending == 0


def test_the_policy_is_refreshed_only_when_it_changed(client):
    from policies import services
    from policies.selectors import active_version_for

    policy = LocalPolicy(client, refresh_seconds=0)
    first = active_version_for("")
    assert policy.version == first.content_hash
    assert policy.etag == f'"{first.content_hash}"'
    assert policy.refresh() is False  # a 304

    rule_set = services.rule_set_create(actor=None, name="strict")
    services.rule_add(
        actor=None,
        rule_set=rule_set,
        fields={"name": "deny_all", "priority": 1, "outcome": "deny", "conditions": []},
    )
    services.rule_set_publish(actor=None, rule_set=rule_set, activate=False)
    services.version_activate(actor=None, version=rule_set.versions.get(), tenant="")
    assert policy.refresh() is True
    assert policy.version == rule_set.versions.get().content_hash != first.content_hash


def test_the_background_thread_sends_a_full_batch(client):
    with LocalDecider(client, refresh_seconds=0, batch_size=2, flush_seconds=60) as decider:
        decider.propose(search("call-a"))
        decider.propose(search("call-b"))
        deadline = time.monotonic() + 10
        while len(logged()) < 2:
            assert time.monotonic() < deadline, "the full batch was not sent"
            time.sleep(0.05)
    assert [row[0] for row in logged()] == ["call-a", "call-b"]


def test_a_failed_send_keeps_the_entries_and_a_retry_logs_them_once(decider, client):
    decider.propose(search("call-1"))
    base_url, client.base_url = client.base_url, "http://127.0.0.1:9"  # nothing listens
    with pytest.raises(OSError):
        decider.flush()
    assert decider.log.pending == 1
    client.base_url = base_url
    decider.propose(search("call-2"))
    decider.flush()
    assert [row[0] for row in logged()] == ["call-1", "call-2"]


def test_a_refused_entry_is_set_aside_and_the_rest_is_logged(decider):
    decider.propose(search("call-1"))
    decider.log.add({"tool_call_id": "call-bad", "outcome": "human_review"})
    decider.propose(search("call-2"))
    decider.flush()
    assert [row[0] for row in logged()] == ["call-1", "call-2"]
    [(entry, errors)] = decider.log.rejected
    assert entry["tool_call_id"] == "call-bad"
    assert "entries[1].outcome" in errors


def test_a_resent_batch_is_logged_once(client, decider):
    decider.propose(search("call-1"))
    [entry] = list(decider.log._pending)
    decider.flush()
    assert client.log_decisions([entry]) == {"logged": 0, "duplicates": 1}
    assert len(logged()) == 1


def test_an_audited_read_is_left_to_the_platform_which_samples_it(client):
    from policies.models import Rule
    from policies.services import rule_set_publish, rule_update

    rule = Rule.objects.get(name="reads_auto_execute")
    rule_update(actor=None, rule=rule, fields={"audit_sample_rate": 1.0})
    rule_set_publish(actor=None, rule_set=rule.rule_set)
    decider = LocalDecider(client, refresh_seconds=0, flush_seconds=60)
    try:
        answer = decider.propose(
            {"run_id": "run-audit", "summary": "Look it up", **search("call-audit")}
        )
        assert answer["outcome"] == "auto_execute"
        assert "local" not in answer
        # The platform drew it (rate 1): an after-the-fact review of the read is open.
        from reviews.models import ReviewRequest

        assert ReviewRequest.objects.filter(audit=True, action_name="search_docs").count() == 1
        assert not decider.log._pending
    finally:
        decider.close()
