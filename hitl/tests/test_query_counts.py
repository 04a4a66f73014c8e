"""Query counts of every admin list and every API read, against committed baselines.

Each screen is counted with rows of two tenants, then again with twice as many rows: the
count must not move (no query per row), and it must be what hitl/tests/query_counts.json
says for the database (`query_baseline`; HITL_UPDATE_QUERY_COUNTS=1 rewrites the file).
"""

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.monitor import save_task
from django_q.tasks import async_task, schedule
from rest_framework.test import APIClient

from evaluation.models import Dataset, TenantEvaluationSetting
from evaluation.regressions import regression_run
from evaluation.services import case_accept, dataset_create, dataset_publish
from evaluation.tests.factories import evaluation_role_groups, make_case
from hitl.kernel import Actor
from policies.models import PolicyVersion
from policies.seed import seed_policy
from policies.services import (
    action_type_create,
    grant_create,
    rule_add,
    rule_set_create,
    rule_set_publish,
)
from policies.tests.factories import GroupFactory, make_proposal
from reviews.models import Queue, ReviewRequest
from reviews.services import (
    agent_create,
    review_request_more_evidence,
    review_supply_evidence,
    tenant_create,
)
from reviews.services.execution import execution_claim
from reviews.services.notifications import notification_preference_set
from reviews.services.proposals import action_propose
from reviews.tests.factories import UserFactory, make_decision, make_review

pytestmark = pytest.mark.django_db

QUERY_COUNTS = Path(__file__).with_name("query_counts.json")
TENANTS = ("acme", "globex")
# Rows of each kind per tenant before the first count; as many again before the second.
ROUNDS = 3

CHANGELISTS = sorted(
    f"{model._meta.app_label}_{model._meta.model_name}_changelist" for model in admin.site._registry
)


def distinct_text() -> str:
    # Case texts far apart, so that no case is a near-duplicate of another.
    return f"{uuid.uuid4().hex} {uuid.uuid4().hex}"


class World:
    """Two tenants, each with a queue its lead owns, a reviewer, an agent that takes
    webhooks, and a busy run; `grow()` adds a round of everything every list shows."""

    def __init__(self, clock):
        self.clock = clock
        seed_policy()
        self.version = PolicyVersion.objects.order_by("-pk").first()
        self.admin = UserFactory(username="admin", is_superuser=True, grant=False)
        groups = evaluation_role_groups()
        self.lead = UserFactory(username="lead", groups=[groups["Leads"]])
        self.ml = UserFactory(username="ml", grant=False, groups=[groups["ML engineers"]])
        self.agents, self.keys, self.reviewers, self.busy = {}, {}, {}, {}
        self.rounds = 0
        for tenant in TENANTS:
            reviewer = UserFactory(username=f"{tenant}-reviewer", groups=[groups["Reviewers"]])
            tenant_create(
                actor=self.admin,
                slug=tenant,
                name=tenant.title(),
                owner=self.lead,
                members=[reviewer],
                policy_version=self.version,
            )
            self.reviewers[tenant] = reviewer
            self.agents[tenant], self.keys[tenant] = agent_create(
                actor=Actor.system("test"),
                name=f"{tenant}-agent",
                tenant=tenant,
                callback_url=f"https://{tenant}.example.com/hook",
            )
            # Open for as long as the rounds last, a day each.
            self.busy[tenant] = self.review(
                tenant, run_id=self.run_id(tenant), expires_at=timezone.now() + timedelta(days=30)
            )
            dataset_create(slug=f"cases-{tenant}", name=f"{tenant} cases", tenant=tenant)
        self.grow()

    def run_id(self, tenant: str) -> str:
        return f"{tenant}-busy-run"

    def queue(self, tenant: str) -> Queue:
        return Queue.objects.get(tenant=tenant, slug="operations")

    def review(self, tenant: str, **fields) -> ReviewRequest:
        return make_review(queue=self.queue(tenant), agent=self.agents[tenant].name, **fields)

    def grow(self, rounds: int = ROUNDS) -> None:
        for _ in range(rounds):
            # A day apart, so the metrics' series grows by a row each round.
            self.clock.shift(timedelta(days=1))
            self.rounds += 1
            for tenant in TENANTS:
                self._tenant_round(tenant)
            self._platform_round()

    def _tenant_round(self, tenant: str) -> None:
        n, agent, reviewer = self.rounds, self.agents[tenant], self.reviewers[tenant]
        # Open reviews of each kind, in the busy run and in runs of their own.
        self.review(tenant, run_id=self.run_id(tenant))
        self.review(tenant, kind="edit", action_name="draft_reply", content=f"Reply {n}")
        self.review(tenant, kind="escalation", run_id=self.run_id(tenant))
        # A decided one: an approval, its webhook and the agent's claim of the execution.
        approved = self.review(tenant)
        make_decision(approved, reviewer=self.lead, reason="fine")
        execution_claim(review_id=approved.review_id, actor=Actor.of_agent(agent))
        # Rejections become cases; those that pass their checks are accepted.
        queue = self.queue(tenant)
        for seconds in (60, None):
            case = make_case(
                queue=queue,
                reviewer=reviewer,
                reason=f"Wrong order: {distinct_text()}",
                seconds_on_screen=seconds,
                agent=agent.name,
                summary=distinct_text(),
                arguments={"order_id": uuid.uuid4().hex, "amount": "20.00", "currency": "EUR"},
            )
            if seconds:
                case_accept(case_id=case.pk, actor=self.ml, note="curated")
        # The busy review gathers decisions and evidence: asked for more, the agent answers.
        busy = self.busy[tenant]
        review_request_more_evidence(
            review_id=busy.review_id, reviewer=self.lead, reason="Which order?"
        )
        review_supply_evidence(
            review_id=busy.review_id,
            actor=Actor.of_agent(agent),
            evidence=[{"id": f"order-{n}", "title": f"Order {n}"}],
        )
        # A read the policy lets through is still recorded as an evaluation.
        read = make_proposal("search_docs", {"query": f"refunds {n}"}, run_id=f"{tenant}-{n}")
        action_propose(agent=agent, proposal=read)
        agent_create(actor=Actor.system("test"), name=f"{tenant}-agent-{n}", tenant=tenant)
        granted = UserFactory(username=f"{tenant}-granted-{n}", grant=False)
        grant_create(actor=self.admin, user=granted, tenants=[tenant], action_names=["send_email"])
        dataset = dataset_create(slug=f"{tenant}-set-{n}", name=f"{tenant} set {n}", tenant=tenant)
        regression_run(
            version=dataset_publish(dataset=dataset, actor=self.ml),
            agent=lambda case_input: None,
            agent_name="agents:idle",
        )

    def _platform_round(self) -> None:
        n = self.rounds
        GroupFactory()
        notification_preference_set(actor=self.admin, user=UserFactory(), mode="digest")
        action_type_create(
            actor=self.admin,
            fields={
                "name": f"custom_action_{n}",
                "tool_type": "write",
                "target_system": "crm",
                "args_schema": {"type": "object"},
            },
        )
        # A tenant of its own for each round: its queue, rule set, version and activation.
        slug = f"extra-{n}"
        tenant_create(
            actor=self.admin,
            slug=slug,
            name=f"Extra {n}",
            owner=self.lead,
            policy_version=self.version,
        )
        # No service writes this setting (the admin form saves it), so neither does the test.
        TenantEvaluationSetting.objects.create(tenant=slug, allow_evaluation=n % 2 == 0)
        rule_set = rule_set_create(actor=self.admin, name=f"rules-{n}", tenant=slug)
        rule_add(
            actor=self.admin,
            rule_set=rule_set,
            fields={
                "name": f"review-everything-{n}",
                "priority": 10,
                "conditions": [],
                "outcome": "human_review",
                "risk": "medium",
            },
        )
        rule_set_publish(actor=self.admin, rule_set=rule_set)
        # The task queue's own rows, written by its own functions: a schedule, a queued task,
        # and a success and a failure stored as its cluster stores them.
        schedule("math.floor", n, name=f"floor-{n}")
        async_task("math.floor", n)
        now = timezone.now()
        for success in (True, False):
            task = {
                "id": uuid.uuid4().hex,
                "name": f"task-{n}-{success}",
                "func": "math.floor",
                "args": (n,),
                "kwargs": {},
                "started": now,
                "stopped": now,
                "result": n if success else "ValueError",
                "success": success,
                "sync": True,
            }
            save_task(task, get_broker())

    def publish(self) -> None:
        for tenant in TENANTS:
            dataset_publish(dataset=Dataset.objects.get(slug=f"cases-{tenant}"), actor=self.ml)


@pytest.fixture
def world(db, clock):
    return World(clock)


def read(client, url):
    """GET `url`, a streamed body read to its end (its queries run while it streams)."""
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    response.body = b"".join(response.streaming_content) if response.streaming else response.content
    return response


def counted(client, url) -> tuple[int, object]:
    """How many queries a read of `url` makes, and the response; after a first read that
    fills the caches (content types, the policy catalogue, which catalogue changes empty)."""
    read(client, url)
    with CaptureQueriesContext(connection) as captured:
        response = read(client, url)
    return len(captured.captured_queries), response


def test_every_admin_list_has_a_fixed_query_count(client, world, query_baseline, subtests):
    client.force_login(world.admin)
    urls = {name: reverse(f"admin:{name}") for name in CHANGELISTS}
    before = {name: counted(client, url) for name, url in urls.items()}
    world.grow()
    for name, url in urls.items():
        with subtests.test(name):
            fewer, first = before[name]
            more, second = counted(client, url)
            rows = first.context["cl"].result_count, second.context["cl"].result_count
            assert rows[1] > rows[0], f"{name} needs more rows the second time: {rows}"
            assert more == fewer, (
                f"{name}: {fewer} queries for {rows[0]} rows, {more} for {rows[1]}"
            )
            with query_baseline(f"admin:{name}"):
                read(client, url)


def agent_client(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.keys['acme']}")
    return client


def person_client(user):
    client = APIClient()
    client.force_login(user)
    return client


def reviews_in(response) -> int:
    return len(response.json()["reviews"])


def decisions_and_evidence(response) -> int:
    body = response.json()
    return len(body["decisions"]) + len(body["evidence"])


def lines(response) -> int:
    return len(response.body.splitlines())


def reviews_counted(response) -> int:
    return response.json()["overall"]["reviews"]


# name: (who asks, what they ask for, how many rows the answer holds)
API_READS = {
    "api:GET /api/v1/runs/{run_id}/ as agent": (
        agent_client,
        lambda world: f"/api/v1/runs/{world.run_id('acme')}/",
        reviews_in,
    ),
    "api:GET /api/v1/runs/{run_id}/ as person": (
        lambda world: person_client(world.lead),
        lambda world: f"/api/v1/runs/{world.run_id('acme')}/",
        reviews_in,
    ),
    "api:GET /api/v1/reviews/{review_id}/ as agent": (
        agent_client,
        lambda world: f"/api/v1/reviews/{world.busy['acme'].review_id}/",
        decisions_and_evidence,
    ),
    "api:GET /api/v1/reviews/{review_id}/ as person": (
        lambda world: person_client(world.lead),
        lambda world: f"/api/v1/reviews/{world.busy['acme'].review_id}/",
        decisions_and_evidence,
    ),
    "api:GET /api/v1/metrics/": (
        lambda world: person_client(world.lead),
        lambda world: "/api/v1/metrics/?tenant=acme",
        reviews_counted,
    ),
    "api:GET /api/v1/metrics/?format=csv": (
        lambda world: person_client(world.lead),
        lambda world: "/api/v1/metrics/?tenant=acme&format=csv",
        lines,
    ),
    "api:GET /api/v1/datasets/{slug}/export/": (
        lambda world: person_client(world.ml),
        lambda world: "/api/v1/datasets/cases-acme/export/",
        lines,
    ),
}


def test_every_api_read_has_a_fixed_query_count(world, query_baseline, subtests):
    reads = {name: (ask(world), url(world), size) for name, (ask, url, size) in API_READS.items()}
    world.publish()
    before = {name: counted(client, url) for name, (client, url, _size) in reads.items()}
    world.grow()
    world.publish()
    for name, (client, url, size) in reads.items():
        with subtests.test(name):
            fewer, first = before[name]
            more, second = counted(client, url)
            rows = size(first), size(second)
            assert rows[1] > rows[0], f"{name} needs more rows the second time: {rows}"
            assert more == fewer, (
                f"{name}: {fewer} queries for {rows[0]} rows, {more} for {rows[1]}"
            )
            with query_baseline(name):
                read(client, url)


def test_the_baselines_are_all_of_something_still_counted():
    counted_names = {f"admin:{name}" for name in CHANGELISTS} | set(API_READS)
    for vendor, counts in json.loads(QUERY_COUNTS.read_text()).items():
        stale = sorted(set(counts) - counted_names)
        assert not stale, f"{QUERY_COUNTS.name} ({vendor}) has baselines nothing counts: {stale}"
