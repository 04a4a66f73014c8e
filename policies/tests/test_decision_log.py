"""The evaluation log's bulk writes: the server's decisions of one request in one insert,
and the rows a deferred task brings back."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from policies import decision_log, selectors, services
from policies.models import PolicyEvaluation
from policies.tests.factories import make_proposal

pytestmark = pytest.mark.django_db


def evaluated(action="search_docs", call_id="", **args):
    proposal = make_proposal(action, args or None)
    if call_id:
        proposal["action"]["tool_call_id"] = call_id
    return services.Evaluated(proposal, selectors.evaluate_proposal(proposal=proposal))


def test_one_request_logs_its_decisions_in_a_constant_number_of_queries(seeded):
    one = [evaluated(call_id="c-0")]
    many = [evaluated(call_id=f"c-{i}") for i in range(1, 41)]
    counts = []
    for items in (one, many):
        with CaptureQueriesContext(connection) as captured:
            services.evaluations_record(actor_label="agent:bot", items=items)
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]
    rows = PolicyEvaluation.objects.order_by("id")
    assert rows.count() == 41
    assert {(r.version_id, r.source, r.outcome) for r in rows} == {
        (seeded.pk, "server", "auto_execute")
    }
    assert [r.tool_call_id for r in rows[:2]] == ["c-0", "c-1"]


def test_each_row_keeps_its_own_decision_and_version(seeded):
    read, refund = evaluated(), evaluated("issue_refund", amount=80)
    logged = services.evaluations_record(actor_label="agent:bot", items=[read, refund])
    assert [(r.action_name, r.outcome, r.rule) for r in logged] == [
        ("search_docs", "auto_execute", "reads_auto_execute"),
        ("issue_refund", "human_review", "writes_need_review"),
    ]
    assert logged[1].decision == refund.decision.to_dict()
    assert logged[1].proposal == refund.proposal


def test_deferred_rows_keep_the_time_the_server_decided(seeded, clock):
    row = decision_log.server_row("agent:bot", evaluated().proposal, evaluated().decision)
    decided = row["decided_at"]
    clock.shift(60)
    [entry] = services.evaluations_insert(rows=[row])
    entry.refresh_from_db()
    assert entry.decided_at.isoformat() == decided
    # created_at is when the worker wrote it: the archive export reads by it, so a row
    # written a minute late is not behind an export that already passed its decision time.
    assert entry.created_at - entry.decided_at >= timezone.timedelta(seconds=60)
    assert entry.version == seeded


def test_a_version_nobody_published_leaves_the_row_without_one(seeded):
    item = evaluated()
    row = decision_log.server_row("agent:bot", item.proposal, item.decision)
    row["decision"]["policy_version"] = "f" * 64
    [entry] = services.evaluations_insert(rows=[row])
    assert entry.version is None


def test_nothing_to_log_is_no_query(seeded):
    with CaptureQueriesContext(connection) as captured:
        assert services.evaluations_record(actor_label="agent:bot", items=[]) == []
    assert not captured.captured_queries
