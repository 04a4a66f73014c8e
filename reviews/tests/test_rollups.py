"""Metrics read from daily rollups equal the metrics counted live from the reviews, for
every person, filter and watermark; rebuilding is idempotent; reads stay flat."""

from datetime import date, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from hitl.kernel import Actor
from policies.models import Tenant
from policies.tests.factories import UserFactory
from reviews import tasks
from reviews.models import (
    Agent,
    ReasonRollup,
    ReviewerRollup,
    ReviewRequest,
    ReviewRollup,
    RollupDay,
)
from reviews.selectors.metrics import MetricsFilter, as_dict, compute
from reviews.services import review_approve, review_cancel, review_escalate, review_reject
from reviews.services.rollups import rollups_rebuild, rollups_refresh
from reviews.services.sweeps import expire_due
from reviews.tests.factories import QueueFactory, make_review

D0 = datetime.fromisoformat("2026-11-02 09:00:00+00:00")
NOW = D0 + timedelta(days=4, hours=6)
DAYS = (date(2026, 11, 1), date(2026, 11, 6))


def _review(queue, agent, i: int, **fields):
    return make_review(
        queue=queue,
        agent=agent,
        run_id=f"{agent}-{queue.slug}-{i}",
        action_name="send_email" if i % 3 == 0 else "issue_refund",
        versions={"agent": f"v{i % 2 + 1}"},
        policy={"rule": "big_refund" if i % 4 == 0 else "writes"},
        choices=["approve", "reject", "escalate"],
        **fields,
    )


def _decide(review, i: int, day: datetime, people) -> None:
    """Every fifth stays open, the others are approved, rejected or escalated (then
    approved by the queue's owner), after i * 7 minutes, some on the next day."""
    rid, kind = review.review_id, i % 5
    later = day + timedelta(minutes=7 * i + 1, hours=20 if i % 7 == 0 else 0)
    with time_machine.travel(later, tick=False):
        if kind == 1:
            review_approve(
                review_id=rid, reviewer=people["rita"], opened_at=later - timedelta(seconds=3 + i)
            )
        elif kind == 2:
            review_reject(review_id=rid, reviewer=people["rita"], reason=f"Wrong order {i % 2}.")
        elif kind == 3:
            review_escalate(review_id=rid, reviewer=people["rita"], reason="Big customer")
    if kind == 3 and i % 2:
        with time_machine.travel(later + timedelta(minutes=30), tick=False):
            review_approve(review_id=rid, reviewer=review.queue.owner)


@pytest.fixture
def world(db):
    """Two tenants, three queues, four days of reviews decided, escalated, expired,
    cancelled or left open, and people who see different parts of them."""
    for slug in ("acme", "globex"):
        Tenant.objects.create(slug=slug, name=slug.title())
    people = {name: UserFactory(username=name) for name in ("rita", "lead", "esc", "gary")}
    people["root"] = UserFactory(username="root", is_superuser=True, is_staff=True)
    Agent.objects.create(name="acme-bot", tenant="acme")
    Agent.objects.create(name="globex-bot", tenant="globex")
    sla, expiry = timedelta(minutes=30), timedelta(days=30)
    ops = QueueFactory(slug="ops", tenant="acme", owner=people["lead"], sla=sla, expiry=expiry)
    access = QueueFactory(
        slug="access", tenant="acme", owner=people["lead"], escalation_owner=people["esc"],
        sla=sla, expiry=expiry,
    )  # fmt: skip
    other = QueueFactory(slug="ops", tenant="globex", owner=people["gary"], sla=sla)
    for queue in (ops, access, other):
        queue.members.add(people["rita"])
    for d in range(4):
        day = D0 + timedelta(days=d, hours=d)
        for queue, agent in ((ops, "acme-bot"), (access, "acme-bot"), (other, "globex-bot")):
            with time_machine.travel(day, tick=False):
                expiring = {"expires_at": day + timedelta(hours=2)}
                reviews = [
                    _review(queue, agent, i, **(expiring if i == 4 else {})) for i in range(8)
                ]
            for i, review in enumerate(reviews):
                _decide(review, i, day, people)
    with time_machine.travel(D0 + timedelta(days=3, hours=6), tick=False):
        expire_due()
    first = ReviewRequest.objects.filter(state="pending").order_by("created_at").first()
    review_cancel(review_id=first.review_id, actor=Actor.of_agent(first.run.agent), reason="no")
    return people


CASES = [
    ("lead", {}),
    ("lead", {"queue": "access"}),
    ("lead", {"action": "send_email", "bucket": "week"}),
    ("lead", {"agent_version": "v2", "rule": "big_refund"}),
    ("rita", {"tenant": "globex"}),
    ("esc", {}),
    ("gary", {}),
    ("root", {"tenant": "*"}),
]


def _all_metrics(people, since=D0 - timedelta(hours=12), until=NOW + timedelta(hours=1)):
    out = []
    for who, narrowing in CASES:
        window = MetricsFilter(since=since, until=until, **narrowing)
        out.append(as_dict(compute(user=people[who], filters=window, now=NOW)))
    return out


def _rollup_rows():
    return [
        sorted(map(repr, model.objects.values_list(*fields)))
        for model, fields in (
            (ReviewRollup, ("day__day", "tenant", "queue_id", "action_name", "reviews", "minutes")),
            (ReviewerRollup, ("day__day", "reviewer_id", "decisions", "fast", "seconds")),
            (ReasonRollup, ("day__day", "choice", "reason", "count")),
        )
    ]


@pytest.mark.django_db
def test_rollups_at_any_watermark_give_the_live_figures(world):
    live = _all_metrics(world)
    assert live[0]["overall"]["reviews"] == 64  # acme, both queues, 4 days
    assert live[5]["overall"]["reviews"] < live[0]["overall"]["reviews"]  # escalated only
    assert live[7]["filters"]["tenant"] == "*" and live[7]["overall"]["reviews"] == 96
    # A watermark in the middle of the decisions: part of each day is still counted live.
    report = rollups_rebuild(actor=None, since=DAYS[0], until=DAYS[1], now=D0 + timedelta(days=2))
    assert report.days == 6 and 0 < report.reviews < 96
    assert _all_metrics(world) == live
    assert _all_metrics(world, since=D0 - timedelta(days=1), until=NOW + timedelta(days=2)) == (
        _live_only(world, since=D0 - timedelta(days=1), until=NOW + timedelta(days=2))
    )
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        assert rollups_refresh(actor=None).days > 0
    assert ReviewRollup.objects.filter(reviews__gt=0).exists()
    assert _all_metrics(world) == live


def _live_only(people, **window):
    """The figures with no rollups at all: every review counted live."""
    with transaction.atomic():
        RollupDay.objects.all().delete()
        figures = _all_metrics(people, **window)
        transaction.set_rollback(True)
    return figures


@pytest.mark.django_db
def test_rebuilding_twice_gives_the_same_rows(world):
    when = NOW + timedelta(hours=1)
    rollups_rebuild(actor=None, since=DAYS[0], until=DAYS[1], now=when)
    first = _rollup_rows()
    assert all(first)
    rollups_rebuild(actor=None, since=DAYS[0], until=DAYS[1], now=when)
    assert _rollup_rows() == first


@pytest.mark.django_db
def test_the_refresh_rebuilds_only_the_days_touched_since(world):
    with time_machine.travel(NOW, tick=False):
        assert rollups_refresh(actor=None).days == 4  # every day with reviews, the first time
    with time_machine.travel(NOW + timedelta(minutes=30), tick=False):
        assert rollups_refresh(actor=None).days == 0
        pending = ReviewRequest.objects.filter(
            state="pending", created_at__lt=D0 + timedelta(hours=9)
        )
        review_approve(review_id=pending.first().review_id, reviewer=world["lead"])  # fmt: skip
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        assert rollups_refresh(actor=None).days == 1
    assert _all_metrics(world) == _live_only(world)


@pytest.mark.django_db
def test_a_scheduled_run_builds_the_newest_days_only_and_the_rest_stays_live(world, monkeypatch):
    monkeypatch.setattr("reviews.services.rollups.MAX_REFRESH_DAYS", 2)
    live = _all_metrics(world)
    with time_machine.travel(NOW, tick=False):
        assert rollups_refresh(actor=None).days == 2
    assert sorted(RollupDay.objects.values_list("day", flat=True)) == [
        date(2026, 11, 4),
        date(2026, 11, 5),
    ]
    assert _all_metrics(world) == live


@pytest.mark.django_db
def test_dashboard_and_api_queries_do_not_grow_with_reviews(client, db):
    lead = UserFactory(username="lead")
    lead.user_permissions.add(Permission.objects.get(codename="view_reviewrequest"))
    queue = QueueFactory(slug="ops", owner=lead, sla=timedelta(minutes=30))
    client.force_login(lead)
    urls = [
        "/api/v1/metrics/?since=2026-11-01&until=2026-11-06",
        reverse("admin:reviews_reviewrequest_metrics") + "?since=2026-11-01&until=2026-11-06",
    ]

    def add(count: int, start: int) -> None:
        for i in range(start, start + count):
            with time_machine.travel(D0 + timedelta(hours=i), tick=False):
                review = _review(queue, "refund-bot", i)
            _decide(review, i, D0 + timedelta(hours=i), {"rita": lead, "lead": lead})

    def queries() -> list[int]:
        rollups_rebuild(actor=None, since=DAYS[0], until=DAYS[1], now=D0 + timedelta(days=1))
        counts = []
        with time_machine.travel(NOW, tick=False):
            for url in urls:
                with CaptureQueriesContext(connection) as seen:
                    assert client.get(url).status_code == 200
                counts.append(len(seen.captured_queries))
        return counts

    add(3, 0)
    few = queries()
    add(27, 3)
    assert queries() == few
    assert client.get(urls[0]).json()["overall"]["reviews"] == 30


@pytest.mark.django_db
def test_the_command_rebuilds_a_range_and_names_bad_input(world, capsys):
    call_command("rebuild_metric_rollups", since="2026-11-01", until="2026-11-06")
    assert "rebuilt 6 days" in capsys.readouterr().out
    with pytest.raises(
        CommandError, match=r"--since: expected a date as YYYY-MM-DD, got '2026-13-01'"
    ):
        call_command("rebuild_metric_rollups", since="2026-13-01")
    with pytest.raises(CommandError, match=r"since \(2026-11-06\) is after until \(2026-11-01\)"):
        call_command("rebuild_metric_rollups", since="2026-11-06", until="2026-11-01")
    with pytest.raises(CommandError, match="at most 400"):
        call_command("rebuild_metric_rollups", since="2020-01-01", until="2026-11-01")
    with pytest.raises(CommandError, match="--until needs --since"):
        call_command("rebuild_metric_rollups", until="2026-11-01")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_worker_task_refreshes_the_rollups_on_postgresql(world):
    live = _all_metrics(world)
    with time_machine.travel(NOW, tick=False):
        assert tasks.refresh_metric_rollups().startswith("rebuilt 4 rollup days")
    assert ReviewRollup.objects.exists()
    assert _all_metrics(world) == live
