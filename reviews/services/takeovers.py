"""Taken-over cases do not wait forever: a reminder halfway, then a safe step at the deadline.

A person who takes an escalation over owns it: it no longer expires (an expiry would tell the
agent "nobody decided" while someone may be doing the work). It gets a deadline of its own
instead, `HITL_TAKEOVER_TIMEOUT` after the take-over (default one day; a timedelta, or a
number of minutes):

- halfway there, the person holding it is reminded by email, once;
- at the deadline the case is handed back to the queue's owner (or its escalation owner
  when it has no owner), and both are told. It stays escalated and taken over: the run
  stays with people, and nothing executes or is decided for anyone. If the case already is
  with that person, they are reminded that it is overdue. Either way a new deadline starts,
  so an open case keeps surfacing once per timeout until someone resolves it.

Why hand back rather than expire or re-open for the queue: the person may be half-way
through doing the work outside the agent, so closing the case, or letting a member approve
the agent's call meanwhile, could make it happen twice. The owner already may resolve any
taken-over case; the hand-back makes it theirs to chase, in their own inbox.

Each step is recorded once: the sweep locks the row (skipping rows a person is deciding),
moves `takeover_next_at` on, stamps the history in the same transaction, and sends the
email after commit. Several sweeps at once never send the same step twice.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from hitl.db import for_update
from hitl.kernel import Actor

from ..models import ReviewRequest, ReviewState
from ._common import stamp
from .sweeps import SweepSummary

logger = logging.getLogger(__name__)

TAKEOVER_ACTOR = Actor.system("takeovers")
DEFAULT_TIMEOUT = timedelta(days=1)
# The reminder goes out at this fraction of the timeout.
REMIND_AT = 0.5
REMINDED, HANDED_BACK, OVERDUE = "reminded", "handed back", "overdue"


def takeover_timeout() -> timedelta:
    """How long a person has to resolve a case they took over (HITL_TAKEOVER_TIMEOUT)."""
    value = getattr(settings, "HITL_TAKEOVER_TIMEOUT", DEFAULT_TIMEOUT)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = timedelta(minutes=value)
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ImproperlyConfigured(
            "HITL_TAKEOVER_TIMEOUT must be a positive timedelta or a number of minutes."
        )
    return value


def start_takeover_clock(review: ReviewRequest, *, now: datetime | None = None) -> None:
    """Set the deadline and the next sweep step of a case a person (re)takes over; the
    caller saves the review (a decision, in its transaction)."""
    now = now or timezone.now()
    timeout = takeover_timeout()
    review.takeover_deadline = now + timeout
    review.takeover_next_at = now + timeout * REMIND_AT


@dataclass(frozen=True)
class _Step:
    """One sweep step on one case: what it was, the history reason, the email."""

    kind: str
    reason: str
    subject: str
    recipients: list[str]


def takeover_sweep(*, now: datetime | None = None, batch_size: int = 500) -> SweepSummary:
    """Remind the people holding taken-over cases halfway to their deadline and hand the
    cases past it back to the queue's owner; each step once. Never executes or decides."""
    now = now or timezone.now()
    summary = SweepSummary()
    outbox: list[tuple[str, str, str, list[str]]] = []
    with transaction.atomic(durable=True):
        due = list(
            for_update(ReviewRequest.objects.all(), skip_locked=True, of=("self",))
            .select_related("queue__owner", "queue__escalation_owner", "assignee")
            .filter(state=ReviewState.ESCALATED, takeover_next_at__lte=now)
            .order_by("takeover_next_at", "id")[:batch_size]
        )
        for review in due:
            if review.takeover_deadline is not None and now < review.takeover_deadline:
                step = _remind(review)
            else:
                step = _at_deadline(review, now)
            stamp(review, TAKEOVER_ACTOR, step.reason)
            review.save(
                update_fields=["assignee", "takeover_deadline", "takeover_next_at", "updated_at"]
            )
            summary.count(step.kind)
            if step.recipients:
                outbox.append((review.review_id, step.subject, _body(review), step.recipients))
            else:
                logger.warning("Taken-over review %s: nobody to email (%s)", review, step.kind)
        transaction.on_commit(lambda: _deliver(outbox))
    return summary


def _remind(review: ReviewRequest) -> _Step:
    holder = review.assignee
    review.takeover_next_at = review.takeover_deadline
    deadline = f"{review.takeover_deadline:%Y-%m-%d %H:%M %Z}"
    return _Step(
        REMINDED,
        f"takeover reminder to {_name(holder)}: resolve by {deadline}",
        f"[hitl] Resolve by {deadline}: {review.summary[:80]}",
        _emails(holder),
    )


def _at_deadline(review: ReviewRequest, now: datetime) -> _Step:
    queue, holder = review.queue, review.assignee
    fallback = next((p for p in (queue.owner, queue.escalation_owner) if p and p.is_active), None)
    start_takeover_clock(review, now=now)
    if fallback is not None and fallback.pk != review.assignee_id:
        review.assignee = fallback
        return _Step(
            HANDED_BACK,
            f"taken over by {_name(holder)} and not resolved in time: handed back to "
            f"{_name(fallback)}",
            f"[hitl] Handed back to {_name(fallback)}, not resolved in time: {review.summary[:60]}",
            _emails(fallback, holder),
        )
    return _Step(
        OVERDUE,
        f"taken-over case overdue: {_name(holder)} reminded",
        f"[hitl] Overdue, still yours to resolve: {review.summary[:70]}",
        _emails(holder),
    )


def _name(user) -> str:
    return user.get_username() if user is not None else "nobody"


def _emails(*people) -> list[str]:
    return sorted({p.email for p in people if p is not None and p.is_active and p.email})


def _body(review: ReviewRequest) -> str:
    base = getattr(settings, "HITL_BASE_URL", "").rstrip("/")
    holder = _name(review.assignee)
    return (
        f"{review.get_kind_display()} review {review.review_id} in {review.queue.name} was "
        f"taken over by a person and is not resolved yet. It is with {holder} now.\n"
        f"{review.summary}\n\n"
        f"Resolve it (done by a person, not needed, guide or reject) by "
        f"{review.takeover_deadline:%Y-%m-%d %H:%M %Z}. Nothing runs until a person does.\n"
        f"{base}/admin/reviews/reviewrequest/{review.pk}/change/\n"
    )


def _deliver(outbox: list[tuple[str, str, str, list[str]]]) -> None:
    # Once: the step is already recorded, so a failed email is logged, never retried.
    for review_id, subject, body, recipients in outbox:
        try:
            send_mail(subject, body, None, recipients)
        except Exception as exc:
            logger.warning("Takeover email for %s could not be sent: %s", review_id, exc)
