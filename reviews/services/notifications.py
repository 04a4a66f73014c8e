"""Notices of what needs a person: a review arrived, its SLA passed, it was escalated.

Each notice is a Notification row, written before anything is sent and unique per (review,
event, recipient), so a task the worker runs twice, or a sweep that meets a review again,
never sends it twice. A person's preference picks the channel: an email per event, the
hourly digest, or nothing; a queue with a chat webhook gets every event too. Emails and
chat posts that fail are retried with backoff by `notifications_retry_due`.
"""

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from hitl.db import for_update
from hitl.kernel import Actor

from ..exceptions import InvalidReviewInput, NotAuthorized
from ..models import (
    OPEN_STATES,
    PROXY_BY_KIND,
    Notification,
    NotificationChannel,
    NotificationEvent,
    NotificationMode,
    NotificationPreference,
    NotificationStatus,
    ReviewKind,
    ReviewRequest,
)
from ._common import stamp

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
TIMEOUT_SECONDS = 10
_SENT_NOW = (NotificationChannel.EMAIL, NotificationChannel.CHAT)


# --- preferences ------------------------------------------------------------------------


def notification_preference_set(
    *, actor: AbstractBaseUser, user: AbstractBaseUser, mode: str
) -> NotificationPreference:
    """Set how `user` hears of reviews; a person sets their own, an admin anyone's."""
    if mode not in NotificationMode.values:
        raise InvalidReviewInput(
            f"Unknown notification mode {mode!r}.",
            field_errors={"mode": [f"Choose one of {', '.join(NotificationMode.values)}."]},
        )
    if actor.pk != user.pk and not actor.is_superuser:
        raise NotAuthorized("Only an admin may change another person's notifications.")
    with transaction.atomic():
        preference = for_update(NotificationPreference.objects.all()).filter(
            user=user
        ).first() or NotificationPreference(user=user)
        preference.mode = mode
        preference.updated_at = timezone.now()
        stamp(preference, Actor.of_user(actor), f"notifications: {mode}")
        preference.save()
    return preference


# --- recording --------------------------------------------------------------------------


def _people(review: ReviewRequest, event: str) -> list[AbstractBaseUser]:
    queue = review.queue
    if event == NotificationEvent.ARRIVED:
        if review.assignee_id:
            return [review.assignee]
        # Nobody assigned: the queue's members, else its owner (a queue has one or the other).
        members = list(
            queue.members.filter(is_active=True).select_related("notification_preference")
        )
        return members or ([queue.owner] if queue.owner_id else [])
    if event == NotificationEvent.BREACHED:
        return [queue.owner] if queue.owner_id and queue.notify_owner_on_breach else []
    return [review.assignee] if review.assignee_id else []


def notices_record(*, review: ReviewRequest, event: str, now: datetime) -> list[int]:
    """Write the notices of one event (in the caller's transaction; existing ones are kept)
    and return the ids of those to send now: the emails and the chat post."""
    rows = []
    for person in _people(review, event):
        mode = NotificationPreference.mode_of(person)
        if mode == NotificationMode.OFF or not person.is_active or not person.email:
            continue
        if event == NotificationEvent.BREACHED and mode == NotificationMode.IMMEDIATELY:
            # The owner's first after-SLA reminder is this email (reminders are emails).
            continue
        channel = (
            NotificationChannel.EMAIL
            if mode == NotificationMode.IMMEDIATELY
            else NotificationChannel.DIGEST
        )
        rows.append((channel, person, f"user:{person.pk}"))
    if review.queue.chat_webhook_url:
        rows.append((NotificationChannel.CHAT, None, "chat"))
    Notification.objects.bulk_create(
        [
            Notification(
                review=review,
                event=event,
                channel=channel,
                recipient=person,
                recipient_key=key,
                created_at=now,
                next_attempt_at=now,
            )
            for channel, person, key in rows
        ],
        ignore_conflicts=True,  # recorded before: by a duplicate task, or an earlier sweep
    )
    return list(
        Notification.objects.filter(
            review=review, event=event, status=NotificationStatus.PENDING, channel__in=_SENT_NOW
        ).values_list("pk", flat=True)
    )


def notify(*, review_id: str, event: str) -> int:
    """Record and send the notices of one event about a review (the worker's task); safe to
    run twice. Returns how many were sent now."""
    if event not in NotificationEvent.values:
        raise InvalidReviewInput(f"Unknown notification event {event!r}.")
    with transaction.atomic(durable=True):
        review = (
            ReviewRequest.objects.select_related(
                "queue__owner__notification_preference", "assignee__notification_preference"
            )
            .filter(review_id=review_id, state__in=OPEN_STATES)
            .first()
        )
        if review is None:
            return 0  # decided (or gone) before anyone needed telling
        ids = notices_record(review=review, event=event, now=timezone.now())
    return deliver_each(ids)


def deliver_each(ids: Iterable[int]) -> int:
    """Send each notice (its own short transaction); returns how many went out."""
    sent = 0
    for pk in ids:
        notice = notification_deliver(notification_id=pk)
        sent += notice is not None and notice.status == NotificationStatus.SENT
    return sent


# --- sending ----------------------------------------------------------------------------


def notification_deliver(*, notification_id: int) -> Notification | None:
    """Attempt one email or chat notice if it is still pending and due (None when not
    attempted): a duplicate finds it locked or sent and does nothing."""
    with transaction.atomic(durable=True):
        notice = (
            for_update(Notification.objects.all(), skip_locked=True, of=("self",))
            .select_related("review__queue", "recipient")
            .filter(pk=notification_id, status=NotificationStatus.PENDING, channel__in=_SENT_NOW)
            .first()
        )
        if notice is None or notice.next_attempt_at > timezone.now():
            return None
        if notice.review.state not in OPEN_STATES:
            notice.status = NotificationStatus.SKIPPED
        else:
            _attempt(notice)
        notice.save()
    return notice


def notifications_retry_due(*, limit: int = 200) -> int:
    """The scheduled sweep: send the notices whose retry time has come (or whose send after
    commit was lost); returns how many were tried."""
    due = list(
        Notification.objects.filter(
            status=NotificationStatus.PENDING,
            channel__in=_SENT_NOW,
            next_attempt_at__lte=timezone.now(),
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(notification_deliver(notification_id=pk) is not None for pk in due)


def _attempt(notice: Notification) -> None:
    notice.attempts += 1
    try:
        if notice.channel == NotificationChannel.CHAT:
            _post_chat(notice.review.queue.chat_webhook_url, chat_message(notice))
        else:
            subject, body = email_message(notice)
            send_mail(subject, body, None, [notice.recipient.email])
    except urllib.error.HTTPError as exc:
        _retry_later(notice, f"HTTP {exc.code}")
        return
    except Exception as exc:  # an SMTP or network failure: retried, never raised
        _retry_later(notice, str(getattr(exc, "reason", exc)) or type(exc).__name__)
        return
    notice.status = NotificationStatus.SENT
    notice.sent_at = timezone.now()
    notice.last_error = ""


def _retry_later(notice: Notification, error: str) -> None:
    notice.last_error = error[:1000]
    if notice.attempts >= MAX_ATTEMPTS:
        notice.status = NotificationStatus.FAILED
        logger.warning("Giving up on notification %s: %s", notice.pk, error)
        return
    delay = min(60 * 2 ** (notice.attempts - 1), 3600)
    notice.next_attempt_at = timezone.now() + timedelta(seconds=delay)


def _post_chat(url: str, message: dict) -> None:
    request = urllib.request.Request(  # noqa: S310 - validated https (or loopback http)
        url,
        data=json.dumps(message).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "hitl-notifications/1"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        response.read()


# --- what a notice says -----------------------------------------------------------------


def review_link(review: ReviewRequest) -> str:
    """The review's decision screen, as an absolute URL (HITL_BASE_URL)."""
    proxy = PROXY_BY_KIND[ReviewKind(review.kind)]
    path = reverse(f"admin:reviews_{proxy._meta.model_name}_change", args=[review.pk])
    return settings.HITL_BASE_URL.rstrip("/") + path


def _headline(notice_event: str, review: ReviewRequest) -> str:
    queue = review.queue
    if notice_event == NotificationEvent.ARRIVED:
        return f"New {review.get_kind_display().lower()} review in {queue.name}"
    if notice_event == NotificationEvent.BREACHED:
        owner = queue.owner.get_username() if queue.owner_id else None
        escalated = f", escalated to {owner}" if owner and queue.notify_owner_on_breach else ""
        return f"SLA breached in {queue.name}{escalated}"
    owner = review.assignee.get_username() if review.assignee_id else "the owner"
    return f"Escalated to {owner} in {queue.name}"


def _context(review: ReviewRequest, event: str) -> dict:
    return {
        "review": review,
        "headline": _headline(event, review),
        "link": review_link(review),
        "what": review.consequence or review.action_name,
    }


def email_message(notice: Notification) -> tuple[str, str]:
    """The subject and body of one notice's email."""
    review = notice.review
    context = _context(review, notice.event)
    subject = f"[hitl] {context['headline']}: {review.summary[:80]}"
    return subject, render_to_string("reviews/email/notice.txt", context)


def _mrkdwn(text: str) -> str:
    # Slack's three control characters; everything else is shown as typed.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_message(notice: Notification) -> dict:
    """A Slack incoming-webhook message: `text` for clients that read only that (Mattermost,
    notifications), `blocks` for the layout, a button to the review."""
    review = notice.review
    context = _context(review, notice.event)
    headline, link = context["headline"], context["link"]
    due = f"due {review.due_at:%Y-%m-%d %H:%M %Z}" if review.due_at else "no SLA"
    facts = f"{review.review_id} · {review.get_risk_display()} risk · {due}"
    return {
        "text": f"{headline}: {review.summary} <{link}|Open the review>",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*{_mrkdwn(headline)}*\n<{link}|{_mrkdwn(review.summary)}>\n"
                    f"{_mrkdwn(context['what'])}",
                },
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(facts)}]},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the review"},
                        "url": link,
                    }
                ],
            },
        ],
    }


# --- the digest -------------------------------------------------------------------------


def digests_send(*, now: datetime | None = None) -> int:
    """The hourly digest: one email per person listing their pending digest notices (still
    open reviews; closed ones are marked skipped). Returns how many emails went out."""
    now = now or timezone.now()
    people = set(
        Notification.objects.filter(
            status=NotificationStatus.PENDING,
            channel=NotificationChannel.DIGEST,
            recipient__isnull=False,
        ).values_list("recipient_id", flat=True)
    )
    return sum(_digest_one(recipient_id=pk, now=now) for pk in sorted(people))


def _digest_one(*, recipient_id: int, now: datetime) -> bool:
    with transaction.atomic(durable=True):
        notices = list(
            for_update(Notification.objects.all(), skip_locked=True, of=("self",))
            .select_related("review__queue__owner", "review__assignee", "recipient")
            .filter(
                recipient_id=recipient_id,
                status=NotificationStatus.PENDING,
                channel=NotificationChannel.DIGEST,
            )
            .order_by("created_at", "id")
        )
        if not notices:
            return False
        listed = [n for n in notices if n.review.state in OPEN_STATES]
        for notice in notices:
            notice.attempts += 1
            notice.status = (
                NotificationStatus.SENT if notice in listed else NotificationStatus.SKIPPED
            )
            notice.sent_at = now
        if listed:
            person = notices[0].recipient
            entries = [{**_context(n.review, n.event), "event": n.event} for n in listed]
            body = render_to_string("reviews/email/digest.txt", {"entries": entries})
            subject = f"[hitl] Digest: {len(listed)} review(s) need attention"
            try:
                send_mail(subject, body, None, [person.email])
            except Exception as exc:
                # Nothing is marked: the next hour's digest carries them again.
                logger.warning("Digest for %s could not be sent: %s", recipient_id, exc)
                Notification.objects.filter(pk__in=[n.pk for n in notices]).update(
                    last_error=str(exc)[:1000]
                )
                return False
        Notification.objects.bulk_update(notices, ["status", "sent_at", "attempts"])
    return bool(listed)
