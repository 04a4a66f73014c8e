"""Webhooks to a real local HTTP receiver: signed, logged, retried."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import time_machine
from django.utils import timezone

from hitl.kernel import Actor
from hitl_client import verify_signature
from reviews.models import DeliveryStatus, WebhookDelivery
from reviews.services import agent_create, review_approve
from reviews.services.webhooks import webhook_deliver, webhook_retry_due
from reviews.tests.factories import make_review

pytestmark = pytest.mark.django_db


class Receiver:
    """A real HTTP server on localhost that records what it is sent."""

    def __init__(self, status=200):
        self.status = status
        self.requests = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.headers, body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def decided_review(receiver, queue, reviewer, django_capture_on_commit_callbacks):
    agent, _ = agent_create(actor=Actor.system("t"), name="hooked", callback_url=receiver.url)
    review = make_review(queue=queue, agent="hooked")
    # A sibling keeps the run waiting: the decision is the one event (no run.resumable).
    make_review(queue=queue, agent="hooked", run_id=review.run.run_id)
    with django_capture_on_commit_callbacks(execute=False):
        review_approve(review_id=review.review_id, reviewer=reviewer)
    return agent, review


def test_decision_is_posted_signed_and_verifiable(
    receiver, queue, reviewer, django_capture_on_commit_callbacks
):
    agent, review = decided_review(receiver, queue, reviewer, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert delivery.event == "review.decided"
    webhook_deliver(delivery_id=delivery.pk)

    (headers, body) = receiver.requests[0]
    payload = json.loads(body)
    assert payload["review_id"] == review.review_id
    assert payload["data"]["state"] == "approved"
    assert payload["data"]["resume"]["action"] == "execute"
    assert verify_signature(
        secret=agent.webhook_secret,
        body=body,
        timestamp=headers["X-HITL-Timestamp"],
        signature=headers["X-HITL-Signature"],
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    # A duplicated task finds it delivered and sends nothing more.
    assert webhook_deliver(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1


def test_bad_signatures_and_replays_are_refused(
    receiver, queue, reviewer, django_capture_on_commit_callbacks
):
    agent, _ = decided_review(receiver, queue, reviewer, django_capture_on_commit_callbacks)
    webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)
    headers, body = receiver.requests[0]
    ts, sig = headers["X-HITL-Timestamp"], headers["X-HITL-Signature"]
    assert not verify_signature(secret="wrong", body=body, timestamp=ts, signature=sig)
    assert not verify_signature(
        secret=agent.webhook_secret, body=body + b" ", timestamp=ts, signature=sig
    )
    assert not verify_signature(
        secret=agent.webhook_secret, body=body, timestamp=ts, signature=sig, now=int(ts) + 3600
    )


def test_failures_are_retried_with_backoff_then_given_up(
    queue, reviewer, django_capture_on_commit_callbacks
):
    with Receiver(status=500) as failing:
        decided_review(failing, queue, reviewer, django_capture_on_commit_callbacks)
        delivery = WebhookDelivery.objects.get()
        webhook_deliver(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            "pending",
            1,
            "HTTP 500",
        )
        first_retry = delivery.next_attempt_at
        assert webhook_retry_due() == 0  # not due yet
        start = timezone.now()
        for hour in range(2, 22, 2):
            with time_machine.travel(start + timedelta(hours=hour), tick=False):
                webhook_retry_due()
        delivery.refresh_from_db()
    assert first_retry > delivery.created_at
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 8


def test_an_unreachable_receiver_is_logged_not_raised(
    queue, reviewer, django_capture_on_commit_callbacks
):
    with Receiver() as gone:
        url = gone.url
    agent_create(actor=Actor.system("t"), name="gone", callback_url=url)
    review = make_review(queue=queue, agent="gone")
    with django_capture_on_commit_callbacks(execute=False):
        review_approve(review_id=review.review_id, reviewer=reviewer)
    delivery = WebhookDelivery.objects.get(event="review.decided")
    webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert delivery.last_error


def test_agents_without_callback_get_no_deliveries(queue, reviewer, review):
    review_approve(review_id=review.review_id, reviewer=reviewer)
    assert not WebhookDelivery.objects.exists()


def test_a_delivery_carries_one_id_across_retries_and_the_next_delivery_another(
    queue, reviewer, django_capture_on_commit_callbacks
):
    # A receiver that handled the event but failed to answer gets it again: the id it saw
    # is how it knows, in the header and in the signed body.
    with Receiver(status=500) as flaky:
        agent, _ = decided_review(flaky, queue, reviewer, django_capture_on_commit_callbacks)
        delivery = WebhookDelivery.objects.get()
        webhook_deliver(delivery_id=delivery.pk)
        flaky.status = 200
        delivery.refresh_from_db()
        with time_machine.travel(delivery.next_attempt_at, tick=False):
            assert webhook_retry_due() == 1
        second = make_review(queue=queue, agent="hooked")
        with django_capture_on_commit_callbacks(execute=False):
            review_approve(review_id=second.review_id, reviewer=reviewer)
        webhook_deliver(delivery_id=WebhookDelivery.objects.get(review=second).pk)

    assert len(flaky.requests) == 3
    ids = []
    for headers, body in flaky.requests:
        assert verify_signature(
            secret=agent.webhook_secret,
            body=body,
            timestamp=headers["X-HITL-Timestamp"],
            signature=headers["X-HITL-Signature"],
        )
        assert json.loads(body)["delivery_id"] == headers["X-HITL-Delivery"]
        ids.append(headers["X-HITL-Delivery"])
    first_try, retry, other = ids
    assert first_try == retry
    assert other != first_try
    assert first_try.startswith("dlv_") and other.startswith("dlv_")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.delivery_id) == (
        "delivered",
        2,
        first_try,
    )


def test_a_blocked_execution_tells_the_agent_why_and_what_next(
    receiver, queue, reviewer, django_capture_on_commit_callbacks
):
    from reviews.services.execution import execution_claim

    agent, _ = agent_create(actor=Actor.system("t"), name="hooked", callback_url=receiver.url)
    review = make_review(
        queue=queue,
        agent="hooked",
        affected_resources=[{"type": "order", "id": "17", "version": "4"}],
    )
    with django_capture_on_commit_callbacks(execute=False):
        review_approve(review_id=review.review_id, reviewer=reviewer)
        execution_claim(
            review_id=review.review_id,
            actor=Actor.of_agent(agent),
            resources=[{"type": "order", "id": "17", "version": "5"}],
        )
    blocked = WebhookDelivery.objects.get(event="execution.blocked")
    webhook_deliver(delivery_id=blocked.pk)

    data = json.loads(receiver.requests[0][1])["data"]
    assert [c["check"] for c in data["checks"]] == ["resource_changed"]
    assert "version 4 was reviewed, it is now 5" in data["reasons"][0]
    assert data["next"]["action"] == "propose_again"
    assert data["resume"]["action"] == "blocked"
    assert data["resume"]["next"] == data["next"]
