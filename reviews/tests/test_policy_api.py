"""GET /api/v1/policy/ (the active version for the agent's engine, ETag and 304) and
POST /api/v1/decisions/ (batches of local decisions: checked, one bulk insert, idempotent)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from hitl.kernel import Actor
from hitl_client import engine as client_engine
from policies import services as policy_services
from policies.models import ActionType, PolicyEvaluation, PolicyVersion, Tenant
from policies.selectors import active_version_for, evaluate_proposal
from reviews.services import agent_create

POLICY = "/api/v1/policy/"
DECISIONS = "/api/v1/decisions/"


def client_for(name: str, tenant: str = "") -> APIClient:
    _, key = agent_create(actor=Actor.system("test"), name=name, tenant=tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def acme(seeded):
    """A second tenant with a policy of its own: every read is denied there."""
    Tenant.objects.create(slug="acme", name="Acme")
    rule_set = policy_services.rule_set_create(actor=None, name="acme-policy", tenant="acme")
    policy_services.rule_add(
        actor=None,
        rule_set=rule_set,
        fields={"name": "acme_denies", "priority": 1, "outcome": "deny", "conditions": []},
    )
    version = policy_services.rule_set_publish(actor=None, rule_set=rule_set, activate=False)
    policy_services.version_activate(actor=None, version=version, tenant="acme")
    return version


def read_input(tenant: str = "", query: str = "refund window") -> dict:
    return client_engine.proposal_input(
        action_name="search_docs",
        target_system="knowledge_base",
        args={"query": query},
        confidence=0.9,
        estimated_cost_usd=0.01,
        tenant=tenant,
    )


def entry(call_id: str = "call-1", **overrides) -> dict:
    version = active_version_for(overrides.pop("tenant", ""))
    return {
        "tool_call_id": call_id,
        "proposal": read_input(),
        "outcome": "auto_execute",
        "rule": "reads_auto_execute",
        "policy_version": version.content_hash,
        "decided_at": timezone.now().isoformat(),
        **overrides,
    }


def log(client, entries):
    return client.post(DECISIONS, {"entries": entries}, format="json")


# --- GET /policy/ -----------------------------------------------------------------------


def test_the_policy_is_the_active_version_and_decides_as_the_server_does(seeded):
    response = client_for("bot").get(POLICY)
    assert response.status_code == 200
    body = response.json()
    version = active_version_for("")
    assert body["version"] == version.content_hash
    assert response["ETag"] == f'"{version.content_hash}"'
    assert (body["tenant"], body["number"], body["server_decides"]) == ("", 1, [])
    assert client_engine.content_hash(body["snapshot"]) == version.content_hash

    compiled = client_engine.compile_policy(
        body["snapshot"], version=body["version"], default_queue=body["default_queue"]
    )
    for action, args in [
        ("search_docs", {"query": "q"}),
        ("issue_refund", {"order_id": "1", "amount": "20.00", "currency": "EUR"}),
    ]:
        proposal = {**read_input(), "action": {"name": action, "args": args}}
        local = client_engine.evaluate(compiled, client_engine.parse_proposal(proposal))
        server = evaluate_proposal(proposal=proposal)
        assert (local.outcome, local.rule, local.queue) == (
            server.outcome,
            server.rule,
            server.queue,
        )
        assert local.policy_version == server.policy_version


def test_an_unchanged_policy_is_a_304_and_a_new_activation_is_not(seeded, acme):
    client = client_for("bot")
    etag = client.get(POLICY)["ETag"]
    unchanged = client.get(POLICY, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert unchanged["ETag"] == etag and not unchanged.content

    policy_services.version_activate(actor=None, version=acme, tenant="")
    changed = client.get(POLICY, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.json()["version"] == acme.content_hash
    assert changed["ETag"] == f'"{acme.content_hash}"' != etag


def test_actions_decided_on_trusted_facts_are_the_servers_and_change_the_etag(seeded):
    client = client_for("bot")
    etag = client.get(POLICY)["ETag"]
    policy_services.action_type_update(
        actor=None,
        action_type=ActionType.objects.get(name="issue_refund"),
        fields={"fact_provider": "examples.refund_agent.payments.refund_facts"},
    )
    response = client.get(POLICY, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["server_decides"] == ["issue_refund"]
    assert response["ETag"] != etag


def test_each_tenant_gets_its_own_policy(seeded, acme):
    default_body = client_for("bot").get(POLICY).json()
    acme_body = client_for("acme-bot", tenant="acme").get(POLICY).json()
    assert default_body["version"] == active_version_for("").content_hash
    assert (acme_body["tenant"], acme_body["version"]) == ("acme", acme.content_hash)
    assert [r["name"] for r in acme_body["snapshot"]["rules"]] == ["acme_denies"]


def test_the_policy_is_for_agents_only(seeded, reviewer):
    assert APIClient().get(POLICY).status_code in (401, 403)
    person = APIClient()
    person.force_login(reviewer)
    assert person.get(POLICY).status_code == 403


# --- POST /decisions/ -------------------------------------------------------------------


def test_a_batch_is_logged_with_its_version_and_the_agents_time(seeded):
    decided_at = timezone.now() - timezone.timedelta(seconds=5)
    entries = [
        entry("call-1", decided_at=decided_at.isoformat()),
        entry("call-2", outcome="request_clarification", rule="low_confidence_clarifies"),
    ]
    response = log(client_for("bot"), entries)
    assert response.status_code == 200, response.json()
    assert response.json() == {"logged": 2, "duplicates": 0}
    rows = {r.tool_call_id: r for r in PolicyEvaluation.objects.all()}
    first = rows["call-1"]
    assert (first.source, first.actor_label, first.action_name) == (
        "local",
        "agent:bot",
        "search_docs",
    )
    assert (first.outcome, first.rule, first.decided_at) == (
        "auto_execute",
        "reads_auto_execute",
        decided_at,
    )
    assert first.version == active_version_for("")
    assert first.proposal == read_input()
    assert rows["call-2"].outcome == "request_clarification"


def test_a_retried_batch_is_logged_once_per_agent(seeded):
    client = client_for("bot")
    assert log(client, [entry("call-1"), entry("call-2")]).json() == {"logged": 2, "duplicates": 0}
    again = log(client, [entry("call-2"), entry("call-3")])
    assert again.json() == {"logged": 1, "duplicates": 1}
    # The same tool call id from another agent is another call.
    assert log(client_for("other-bot"), [entry("call-1")]).json()["logged"] == 1
    calls = PolicyEvaluation.objects.values_list("actor_label", "tool_call_id")
    assert sorted(calls) == [
        ("agent:bot", "call-1"),
        ("agent:bot", "call-2"),
        ("agent:bot", "call-3"),
        ("agent:other-bot", "call-1"),
    ]


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        ({"outcome": "human_review"}, "entries[1].outcome", "POST /api/v1/actions/"),
        ({"outcome": "maybe"}, "entries[1].outcome", "one of auto_execute"),
        ({"policy_version": "0" * 64}, "entries[1].policy_version", "no published policy"),
        ({"policy_version": "abc"}, "entries[1].policy_version", "64 hex"),
        ({"rule": "no_such_rule"}, "entries[1].rule", "no rule 'no_such_rule'"),
        ({"decided_at": "yesterday"}, "entries[1].decided_at", "ISO 8601"),
        ({"decided_at": "2031-03-14T09:00:00"}, "entries[1].decided_at", "UTC offset"),
        ({"decided_at": "2024-01-01T12:99:00Z"}, "entries[1].decided_at", "UTC offset"),
        ({"decided_at": "2999-01-01T00:00:00Z"}, "entries[1].decided_at", "in the future"),
        ({"decided_at": "2000-01-01T00:00:00Z"}, "entries[1].decided_at", "too old"),
        ({"tool_call_id": ""}, "entries[1].tool_call_id", "1 to 200"),
        ({"tool_call_id": "call-0"}, "entries[1].tool_call_id", "also entries[0]"),
        ({"proposal": {"action": {}}}, "entries[1].proposal.action.name", "required"),
        ({"proposal": read_input(tenant="acme")}, "entries[1].proposal.tenant", "tenant ''"),
    ],
)
def test_a_bad_entry_is_a_400_naming_it_and_nothing_is_logged(seeded, bad, field, message):
    response = log(client_for("bot"), [entry("call-0"), entry("call-1", **bad)])
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert list(body["fields"]) == [field]
    assert message in body["fields"][field][0]
    assert not PolicyEvaluation.objects.exists()


@pytest.mark.parametrize("entries", [[], "nope", None, [1], [entry] * 0 + ["x"] * 1001])
def test_a_batch_must_be_a_list_of_1_to_1000_objects(seeded, entries):
    response = log(client_for("bot"), entries)
    assert response.status_code == 400
    assert set(response.json()["fields"]) <= {"entries", "entries[0]"}


def test_an_agent_logs_only_with_its_own_tenants_versions(seeded, acme):
    acme_entry = entry("call-1", tenant="acme", proposal=read_input(tenant="acme"))
    acme_entry.update(outcome="deny", rule="acme_denies")
    assert log(client_for("acme-bot", tenant="acme"), [acme_entry]).status_code == 200
    # The default tenant's version is every tenant's fallback; another tenant's is not.
    fallback = entry("call-2", proposal=read_input(tenant="acme"))
    assert log(client_for("acme-bot2", tenant="acme"), [fallback]).status_code == 200
    stolen = {**acme_entry, "proposal": read_input()}
    response = log(client_for("bot"), [stolen])
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["entries[0].policy_version"]
    tenants = PolicyEvaluation.objects.values_list("tenant", "version__rule_set__tenant")
    assert sorted(tenants) == [("acme", ""), ("acme", "acme")]


def test_the_bulk_insert_costs_the_same_queries_whatever_the_batch_size(seeded):
    client = client_for("bot")
    log(client, [entry("warm-up")])  # the key's last_used_at is written once a minute

    def queries(size: int, prefix: str) -> int:
        entries = [entry(f"{prefix}-{i}") for i in range(size)]
        with CaptureQueriesContext(connection) as captured:
            response = log(client, entries)
        assert response.json()["logged"] == size
        return len(captured.captured_queries)

    # SQLite binds at most 999 parameters a statement: Django splits bigger inserts there.
    many = 500 if connection.vendor == "postgresql" else 60
    assert queries(1, "one") == queries(many, "many")
    assert PolicyEvaluation.objects.filter(source="local").count() == many + 2


def test_logging_is_for_agents_only(seeded, reviewer):
    person = APIClient()
    person.force_login(reviewer)
    assert log(person, [entry()]).status_code == 403
    assert not PolicyVersion.objects.filter(number=2).exists()
    assert not PolicyEvaluation.objects.exists()
