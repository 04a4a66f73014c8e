"""Reads and inserts composed once (hitl.kernel.rows) give what the ORM gives, and the hot
path's statements are prepared on PostgreSQL."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hitl.internals import prepared_cursor
from hitl.kernel.rows import BATCH, Read, insert_rows
from hitl.tasks import broker, enqueue
from hitl.tests.source import lines_matching
from policies.models import PolicyActivation
from policies.seed import seed_policy
from policies.selectors import active_version_for
from reviews.models import Agent, AgentKey, Queue, ResourceRef
from reviews.tests.factories import QueueFactory, UserFactory, make_review

pytestmark = pytest.mark.django_db

KEYS = Read(AgentKey, '"t0"."prefix" = %s', related=("agent",))
QUEUES = Read(Queue, '"t0"."tenant" = %s', related=("owner",), order_by='"t0"."slug"')


def _key(prefix: str, agent: Agent, **fields) -> AgentKey:
    return AgentKey.objects.create(agent=agent, prefix=prefix, digest="d" * 64, **fields)


def test_a_read_gives_the_rows_the_orm_gives_with_their_relation_loaded(
    django_assert_num_queries,
):
    used = timezone.now() - timedelta(minutes=5)
    for tenant in ("acme", "globex"):
        agent = Agent.objects.create(name=f"bot-{tenant}", tenant=tenant)
        _key(f"p-{tenant}", agent, last_used_at=used)
    with django_assert_num_queries(1):
        record = KEYS.first("p-globex")
        # The agent came with it, as select_related brings it.
        assert (record.agent.name, record.agent.tenant) == ("bot-globex", "globex")
    orm = AgentKey.objects.select_related("agent").get(prefix="p-globex")
    assert record == orm and record.agent == orm.agent
    # Converted as the ORM converts (SQLite stores text: the read gives an aware datetime).
    assert record.last_used_at == orm.last_used_at == used
    assert record.created_at == orm.created_at
    assert KEYS.first("p-none") is None


def test_a_nullable_relation_with_no_row_reads_as_none(django_assert_num_queries):
    owner = UserFactory(username="olga")
    QueueFactory(slug="b-owned", tenant="acme", owner=owner)
    QueueFactory(slug="a-unowned", tenant="acme", owner=None)
    QueueFactory(slug="c-other", tenant="globex")
    with django_assert_num_queries(1):
        rows = QUEUES.all("acme")
        assert [(q.slug, q.owner) for q in rows] == [("a-unowned", None), ("b-owned", owner)]
    assert [q.sla for q in rows] == [q.sla for q in Queue.objects.filter(tenant="acme")]


def test_deferred_fields_are_left_to_load_on_access():
    seed_policy()
    version = active_version_for("")
    assert version is not None
    # The snapshot (the whole policy) is not read with every proposal.
    assert "snapshot" in version.get_deferred_fields()
    assert version.snapshot == type(version).objects.get(pk=version.pk).snapshot
    assert version.rule_set.name
    assert version == PolicyActivation.objects.get(tenant="").version


def test_inserted_rows_get_their_own_keys_in_order():
    review = make_review()
    refs = [
        ResourceRef(
            review=review,
            tenant=review.tenant,
            resource_type="order",
            resource_id=str(n),
            created_at=review.created_at,
        )
        for n in range(BATCH * 2 + 3)  # three statements
    ]
    assert insert_rows(refs) == refs
    stored = dict(ResourceRef.objects.filter(review=review).values_list("pk", "resource_id"))
    assert {ref.pk: ref.resource_id for ref in refs} == stored
    assert not any(ref._state.adding for ref in refs)
    assert insert_rows([]) == []


def _plans_of(table: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            [f"%{table}%"],
        )
        return [plans for (plans,) in cursor.fetchall()]


@pytest.mark.postgres
def test_the_hot_paths_statements_are_prepared_and_still_logged():
    _key("p-prepared", Agent.objects.create(name="bot"))
    KEYS.first("p-prepared")
    (before,) = _plans_of("reviews_agentkey")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert KEYS.first("p-prepared").agent.name == "bot"
    assert len(queries) == 3  # counted as every other statement is
    # Logged with its values, as the ORM's statements are.
    assert all("= 'p-prepared'" in query["sql"] for query in queries.captured_queries)
    # One prepared statement, run with its one plan (plan_cache_mode=force_generic_plan).
    assert _plans_of("reviews_agentkey") == [before + 3]


@pytest.mark.postgres
def test_no_statement_is_prepared_where_preparing_is_turned_off(monkeypatch):
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    with prepared_cursor(connection) as cursor:
        cursor.execute("SELECT %s::int + 41", [1])
        assert cursor.fetchone() == (42,)
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%+ 41'")
        assert cursor.fetchone() == (0,)


def test_tasks_are_queued_on_one_broker_per_process():
    assert broker() is broker()
    before = broker().queue_size()
    enqueue("math.floor", 1.5, task_name="floor")
    enqueue("math.floor", 2.5, task_name="floor")
    assert broker().queue_size() == before + 2


def test_the_product_queues_tasks_only_through_enqueue():
    tasks = Path(settings.BASE_DIR) / "hitl" / "tasks.py"
    assert lines_matching(r"\basync_task\(", allowed=tasks) == []
