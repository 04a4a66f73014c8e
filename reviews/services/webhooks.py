"""Callbacks to agents: signed POSTs, logged per attempt, retried with backoff."""

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from hitl.db import for_update
from hitl.tasks import enqueue

from .. import selectors
from ..models import Agent, AgentRun, DeliveryStatus, ReviewRequest, WebhookDelivery

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-HITL-Signature"
TIMESTAMP_HEADER = "X-HITL-Timestamp"
# The same on every retry of one delivery and different between deliveries: a receiver that
# saw it before already handled the event (an answer lost in transit makes us send again).
DELIVERY_HEADER = "X-HITL-Delivery"


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """`v1=` + HMAC-SHA256 over "<timestamp>.<body>", so a replayed old body fails."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def webhook_queue(*, review: ReviewRequest, event: str, data: dict[str, Any] | None = None) -> None:
    """Record an event for the review's agent (in the caller's transaction) and send it
    after commit; agents without a callback URL poll instead. Without `data`, the event
    carries the review's state and what the agent should do next."""
    agent = review.run.agent
    if not agent.callback_url:
        return
    if data is None:
        data = {"state": review.state, "resume": selectors.resume_instruction(review)}
    payload = {"event": event, "review_id": review.review_id, "run_id": review.run.run_id}
    _record(agent=agent, review=review, event=event, payload={**payload, "data": data})


def run_webhook_queue(*, run: AgentRun, event: str) -> None:
    """Record a run's event (`run.resumable`) for its agent, carrying the run as GET
    /runs/<id>/ shows it without the review packets, and send it after commit."""
    agent = run.agent
    if not agent.callback_url:
        return
    body = selectors.run_body(run, reviews=selectors.packet_queryset().filter(run=run))
    _record(
        agent=agent,
        review=None,
        event=event,
        payload={"event": event, "run_id": run.run_id, "run": body},
    )


def _record(
    *, agent: Agent, review: ReviewRequest | None, event: str, payload: dict[str, Any]
) -> None:
    delivery = WebhookDelivery.objects.create(
        agent=agent,
        review=review,
        event=event,
        url=agent.callback_url,
        # Stored as the JSON it is sent as: an execution's times become ISO strings here,
        # not a TypeError in the caller's transaction.
        payload=json.loads(json.dumps(payload, cls=DjangoJSONEncoder)),
    )
    transaction.on_commit(lambda: _enqueue(delivery.pk))


def _enqueue(delivery_id: int) -> None:
    enqueue("reviews.tasks.deliver_webhook", delivery_id, task_name=f"webhook-{delivery_id}")


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """Attempt one delivery if it is still pending and due (None when not attempted); a
    duplicate task finds it locked or already delivered and does nothing."""
    with transaction.atomic(durable=True):
        delivery = (
            for_update(WebhookDelivery.objects.all(), skip_locked=True)
            .select_related("agent")
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING)
            .first()
        )
        if delivery is None or delivery.next_attempt_at > timezone.now():
            return None
        _attempt(delivery)
    return delivery


def webhook_retry_due(*, limit: int = 100) -> int:
    """Send every pending delivery whose retry time has come; returns how many were tried.
    Each goes in its own short transaction, so one slow receiver holds one row only."""
    due = list(
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    tried = 0
    for delivery_id in due:
        delivery = webhook_deliver(delivery_id=delivery_id)
        tried += delivery is not None
    return tried


def _attempt(delivery: WebhookDelivery) -> None:
    # Added when sending, so deliveries queued before the id existed carry it too; inside
    # the signed body, so it cannot be altered on the way.
    payload = {**delivery.payload, "delivery_id": delivery.delivery_id}
    body = json.dumps(payload, cls=DjangoJSONEncoder, sort_keys=True).encode()
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310 - the URL is validated as http(s)
        delivery.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "hitl-webhooks/1",
            TIMESTAMP_HEADER: str(timestamp),
            DELIVERY_HEADER: delivery.delivery_id,
            SIGNATURE_HEADER: sign(
                secret=delivery.agent.webhook_secret, timestamp=timestamp, body=body
            ),
        },
    )
    delivery.attempts += 1
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            delivery.last_status_code = response.status
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = timezone.now()
        delivery.last_error = ""
    except urllib.error.HTTPError as exc:
        delivery.last_status_code = exc.code
        _schedule_retry(delivery, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        delivery.last_status_code = None
        _schedule_retry(delivery, str(getattr(exc, "reason", exc)))
    delivery.save()


def _schedule_retry(delivery: WebhookDelivery, error: str) -> None:
    delivery.last_error = error[:1000]
    if delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = DeliveryStatus.FAILED
        logger.warning("Giving up on webhook %s after %s attempts", delivery.pk, delivery.attempts)
        return
    delay = min(30 * 2 ** (delivery.attempts - 1), 3600)
    delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
