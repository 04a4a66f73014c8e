"""Metrics on a known dataset equal the figures computed by hand."""

import csv
import io
from datetime import date, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from reviews.selectors.metrics import MetricsFilter, compute
from reviews.services import (
    review_approve,
    review_cancel,
    review_edit,
    review_escalate,
    review_reject,
)
from reviews.services.rollups import rollups_rebuild
from reviews.services.sweeps import expire_due
from reviews.tests.factories import QueueFactory, UserFactory, make_review

T = datetime.fromisoformat("2026-11-02 10:00:00+00:00")
NOW = T + timedelta(hours=4)


def minutes(n):
    return T + timedelta(minutes=n)


@pytest.fixture(params=["live", "rollups"])
def dataset(request, db):
    """Seven reviews created at T in a queue with a 1 h SLA; r5 expires after 3 h. Counted
    live from the reviews, or read from the daily rollups built after the decisions."""
    rita, lead = UserFactory(username="rita"), UserFactory(username="lead")
    queue = QueueFactory(slug="ops", owner=lead, sla=timedelta(hours=1), expiry=timedelta(hours=10))
    queue.members.add(rita)
    with time_machine.travel(T, tick=False):
        reviews = [
            make_review(
                queue=queue,
                run_id=f"run-{i}",
                choices=["approve", "edit", "reject", "escalate"],
                expires_at=T + timedelta(hours=3) if i == 4 else None,
            )
            for i in range(7)
        ]
    r1, r2, r3, r4, r5, r6, r7 = (r.review_id for r in reviews)
    with time_machine.travel(minutes(10), tick=False):
        review_approve(review_id=r1, reviewer=rita, opened_at=minutes(10) - timedelta(seconds=5))
    with time_machine.travel(minutes(30), tick=False):
        review_reject(review_id=r2, reviewer=rita, reason="Wrong order.")
    with time_machine.travel(minutes(120), tick=False):
        review_edit(
            review_id=r3,
            reviewer=rita,
            arguments={"order_id": "17", "amount": "10.00", "currency": "EUR"},
            reason="Partial refund",
        )
    with time_machine.travel(minutes(5), tick=False):
        review_escalate(review_id=r4, reviewer=rita, reason="Big customer")
    with time_machine.travel(minutes(50), tick=False):
        review_approve(review_id=r4, reviewer=lead)
    with time_machine.travel(minutes(180), tick=False):
        expire_due()
    from hitl.kernel import Actor
    from reviews.models import ReviewRequest

    review_cancel(
        review_id=r7,
        actor=Actor.of_agent(ReviewRequest.objects.get(review_id=r7).run.agent),
        reason="withdrawn",
    )
    if request.param == "rollups":
        built = rollups_rebuild(
            actor=None, since=date(2026, 11, 1), until=date(2026, 11, 3), now=NOW
        )
        assert built.reviews == 5  # r7 was cancelled on the test's clock, after NOW
    return {"rita": rita, "lead": lead, "queue": queue, "ids": (r1, r2, r3, r4, r5, r6, r7)}


def figures(user, **filters):
    window = MetricsFilter(since=T - timedelta(days=1), until=T + timedelta(days=1), **filters)
    return compute(user=user, filters=window, now=NOW)


@pytest.mark.django_db
def test_rates_times_and_breaches_match_hand_computation(dataset):
    overall = figures(dataset["lead"]).overall
    # 7 reviews; closed: approved r1 r4, edited r3, rejected r2, expired r5 (r6 open,
    # r7 cancelled and left out of the rates).
    assert (overall.reviews, overall.closed, overall.open) == (7, 5, 1)
    assert overall.approval_rate == 0.4
    assert overall.edit_rate == 0.2
    assert overall.rejection_rate == 0.2
    assert overall.expiry_rate == 0.2
    assert overall.escalation_rate == 0.2  # r4 was escalated before approval
    # Decided after 10, 30, 50 and 120 minutes: median 40, p90 50 + 0.7 * 70 = 99.
    assert overall.median_minutes_in_queue == 40
    assert overall.p90_minutes_in_queue == 99
    # Of the 6 not cancelled: r3 (decided after 2 h), r5 (expired), r6 (open at 4 h).
    assert overall.sla_breach_rate == 0.5


@pytest.mark.django_db
def test_slices_reasons_and_series(dataset):
    metrics = figures(dataset["lead"])
    assert set(metrics.slices) == {"queue", "action", "agent_version", "rule"}
    assert metrics.slices["queue"]["ops"].reviews == 7
    # Normalised (lower case, no final period), one each.
    assert {(r["choice"], r["reason"], r["count"]) for r in metrics.top_reasons} == {
        ("reject", "wrong order", 1),
        ("edit", "partial refund", 1),
        ("escalate", "big customer", 1),
    }
    assert [s["period"] for s in metrics.series] == ["2026-11-02"]
    assert metrics.series[0]["approved"] == 2
    rita = next(r for r in metrics.reviewers if r["reviewer"] == "rita")
    assert (rita["decisions"], rita["approval_rate"]) == (4, 0.25)


@pytest.mark.django_db
def test_filters_narrow_the_population(dataset):
    assert figures(dataset["lead"], queue="nope").overall.reviews == 0
    assert figures(dataset["lead"], action="issue_refund").overall.reviews == 7
    outsider = UserFactory(username="outsider")
    assert figures(outsider).overall.reviews == 0  # only what a person may see


@pytest.mark.django_db
def test_rubber_stamp_signal(db):
    fast = UserFactory(username="fast")
    queue = QueueFactory()
    queue.members.add(fast)
    for _ in range(20):
        review = make_review(queue=queue)
        from django.utils import timezone

        review_approve(
            review_id=review.review_id,
            reviewer=fast,
            opened_at=timezone.now() - timedelta(seconds=2),
        )
    metrics = compute(user=fast, filters=MetricsFilter.last_days(1))
    (row,) = metrics.reviewers
    assert (row["decisions"], row["approval_rate"], row["rubber_stamp"]) == (20, 1.0, True)


@pytest.mark.django_db
def test_api_json_csv_and_bad_parameters(dataset):
    client = APIClient()
    client.force_login(dataset["lead"])
    url = "/api/v1/metrics/?since=2026-11-01&until=2026-11-03"
    with time_machine.travel(NOW, tick=False):
        body = client.get(url).json()
        assert body["overall"]["approval_rate"] == 0.4
        assert body["overall"]["sla_breach_rate"] == 0.5
        response = client.get(url + "&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["period"], r["approved"]) for r in rows] == [("2026-11-02", "2")]
    bad = client.get("/api/v1/metrics/?since=2026-11-05&until=2026-11-01")
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid")
    assert client.get("/api/v1/metrics/?bucket=month").status_code == 400
    assert APIClient().get("/api/v1/metrics/").status_code in (401, 403)


@pytest.mark.django_db
def test_dashboard_renders_charts_with_flat_query_count(client, dataset):
    lead = dataset["lead"]
    lead.user_permissions.add(Permission.objects.get(codename="view_reviewrequest"))
    client.force_login(lead)
    url = reverse("admin:reviews_reviewrequest_metrics") + "?since=2026-11-01&until=2026-11-03"
    with time_machine.travel(NOW, tick=False):
        page = client.get(url)
        assert page.status_code == 200
        assert page.text.count('<svg class="hitl-chart"') == 2
        assert "rubber-stamp signal" in page.text
        with CaptureQueriesContext(connection) as few:
            client.get(url)
        for i in range(10):
            make_review(queue=dataset["queue"], run_id=f"more-{i}")
        with CaptureQueriesContext(connection) as many:
            client.get(url)
    assert len(many.captured_queries) == len(few.captured_queries)
    assert (
        client.get(reverse("admin:reviews_reviewrequest_metrics") + "?since=bad").status_code == 200
    )
