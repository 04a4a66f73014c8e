"""The API answers JSON whatever fails, and routine refusals log one line."""

import json
import logging
import socket
from contextlib import contextmanager

import pytest
from django.db import connections
from django.urls import reverse
from rest_framework.test import APIClient

from hitl.kernel import Actor
from reviews.services import agent_create, review_approve
from reviews.tests.factories import QueueFactory, UserFactory, make_review

REFUND = {
    "run_id": "run-1",
    "action": {
        "name": "issue_refund",
        "target_system": "billing",
        "args": {"order_id": "17", "amount": "20.00", "currency": "EUR"},
    },
    "summary": "Refund a broken mug",
    "confidence": 0.96,
    "estimated_cost_usd": 0.02,
}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


@contextmanager
def database_unreachable(tmp_path):
    """The default connection really fails to connect until the block ends."""
    conn = connections["default"]
    saved = dict(conn.settings_dict)
    if conn.vendor == "postgresql":
        conn.close()
        conn.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
        raw = None
    else:
        # SQLite's in-memory test database lives as long as its connection: set it aside
        # (open) and point new connections at a file that cannot be opened.
        raw, conn.connection = conn.connection, None
        conn.settings_dict["NAME"] = str(tmp_path / "no-such-directory" / "db.sqlite3")
    try:
        yield
    finally:
        if conn.connection is not None and conn.connection is not raw:
            conn.close()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)
        if raw is not None:
            conn.connection = raw


@pytest.mark.django_db(transaction=True)
def test_an_api_request_while_the_database_is_down_gets_a_json_503(tmp_path, caplog):
    _, key = agent_create(actor=Actor.system("t"), name="bot")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    caplog.set_level(logging.WARNING, logger="django.request")

    with database_unreachable(tmp_path):
        read = client.get("/api/v1/runs/run-1/")
        write = client.post("/api/v1/actions/", json.dumps(REFUND), content_type="application/json")

    for response in (read, write):
        assert response.status_code == 503
        assert response["Content-Type"] == "application/json"
        assert response["Retry-After"] == "5"
        body = response.json()
        assert body["error"] == "database_unavailable"
        assert "Retry in 5 seconds" in body["detail"]
        assert body["fields"] == {}
    outage = [r for r in caplog.records if getattr(r, "status_code", None) == 503]
    assert len(outage) == 2  # once per request, not once more by Django
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in outage)
    # The database is back: the same request works again.
    assert client.get("/api/v1/runs/run-1/").status_code == 404


def broken_checks(**kwargs):
    """A re-check that fails in a way nobody foresaw."""
    raise RuntimeError("billing answered garbage")


@pytest.mark.django_db
def test_an_unexpected_error_under_the_api_is_a_json_500_with_its_traceback_logged(
    seeded_policy, caplog, monkeypatch
):
    from reviews.services import execution

    monkeypatch.setattr(execution, "stale_checks", broken_checks)
    _, key = agent_create(actor=Actor.system("t"), name="bot")
    review = make_review(queue=seeded_policy, agent="bot")
    review_approve(review_id=review.review_id, reviewer=UserFactory(username="rita"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    caplog.set_level(logging.ERROR, logger="django.request")

    response = client.post(
        f"/api/v1/reviews/{review.review_id}/execution/claim/", {}, format="json"
    )

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "server_error"
    assert "garbage" not in response.json()["detail"]  # internals stay in the log
    (logged,) = [r for r in caplog.records if getattr(r, "status_code", None) == 500]
    assert logged.exc_info and "billing answered garbage" in str(logged.exc_info[1])


@pytest.fixture
def seeded_policy(db):
    from policies.seed import seed_policy

    seed_policy()
    queue = QueueFactory(slug="operations")
    queue.members.add(UserFactory(username="rita"))
    return queue


@pytest.mark.django_db
def test_refused_requests_log_one_line_without_a_traceback(seeded_policy, caplog):
    review = make_review(queue=seeded_policy)
    outsider = UserFactory(username="olga")  # staff, but not in the review's queue
    admin = APIClient()
    admin.force_login(outsider)
    _, key = agent_create(actor=Actor.system("t"), name="bot")
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Bearer hitl_deadbeef0000_nope")
    caplog.set_level(logging.INFO)

    decide = reverse("admin:reviews_approvalreview_decide", args=[review.pk])
    codes = [
        admin.post(decide, {"choice": "approve"}).status_code,  # Django's PermissionDenied
        agent.post(
            f"/api/v1/reviews/{review.review_id}/decisions/", {"choice": "approve"}, format="json"
        ).status_code,
        stranger.get("/api/v1/runs/run-1/").status_code,
    ]

    assert codes == [403, 403, 401]
    refused = [r for r in caplog.records if getattr(r, "status_code", 0) in (401, 403)]
    assert len(refused) == 3
    for record in refused:
        assert record.exc_info is None, record.getMessage()
        assert record.levelno == logging.WARNING
        assert "\n" not in logging.Formatter().format(record)  # no traceback below it
