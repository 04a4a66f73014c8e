"""The worker's sweeps: expire what nobody decided in time, remind before it comes to that.

Both are safe with several worker clusters at once: rows are claimed with
`SELECT ... FOR UPDATE SKIP LOCKED`, so two sweeps never process the same review, and a
reviewer deciding a review at that moment holds its lock (the sweep skips it; if the sweep
got there first, the reviewer gets "already expired").
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, IntegerField, OuterRef, Value
from django.utils import timezone

from hitl.db import for_update
from hitl.internals import history_tracked_columns, queryset_sql, set_change_reason
from hitl.kernel import Actor

from ..expiry import STRATEGIES, STRATEGY_BY_VALUE
from ..models import (
    OPEN_STATES,
    AgentRun,
    NotificationEvent,
    NotificationMode,
    NotificationPreference,
    Queue,
    Reminder,
    ReminderKind,
    ReviewRequest,
    ReviewState,
    RunCall,
    RunStatus,
)
from ._common import OPEN_FOR_RUN, run_status_after
from .notifications import deliver_each, notices_record, review_link
from .webhooks import run_webhook_queue, webhook_queue

logger = logging.getLogger(__name__)

EXPIRY_ACTOR = Actor.system("expiry")
REMINDER_ACTOR = Actor.system("reminders")


@dataclass
class SweepSummary:
    """What one sweep did, for the log line and the command's output."""

    processed: int = 0
    by_action: dict[str, int] = field(default_factory=dict)

    def count(self, action: str, times: int = 1) -> None:
        self.processed += times
        self.by_action[action] = self.by_action.get(action, 0) + times

    def line(self, what: str) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.by_action.items()))
        return f"{what}: {self.processed}" + (f" ({parts})" if parts else "")


def expire_due(*, now: datetime | None = None, batch_size: int = 2000) -> SweepSummary:
    """Expire every open review past its `expires_at`, in batches, and apply each queue's
    expiry behaviour. Expired reviews never execute."""
    summary = SweepSummary()
    while True:
        done = _expire_batch(now=now or timezone.now(), batch_size=batch_size, summary=summary)
        if done < batch_size:
            return summary


def _expire_batch(*, now: datetime, batch_size: int, summary: SweepSummary) -> int:
    with transaction.atomic(durable=True):
        batch = list(
            for_update(ReviewRequest.objects.all(), skip_locked=True)
            # The sweep reads a few columns; the packet stays in the database (the history
            # copy and a reroute read it there), which is most of the cost saved.
            .only("id", "review_id", "state", "expires_at", "queue_id", "run_id", "audit")
            .filter(state__in=OPEN_STATES, expires_at__lte=now)
            .order_by("expires_at", "id")[:batch_size]
        )
        if batch:
            expire_reviews(batch, now=now, actor=EXPIRY_ACTOR, summary=summary)
        return len(batch)


def expire_reviews(
    batch: list[ReviewRequest],
    *,
    now: datetime,
    actor: Actor,
    summary: SweepSummary | None = None,
    behaviour: str | None = None,
) -> None:
    """Expire reviews locked by the caller and apply each queue's expiry strategy (or
    `behaviour` for all): the one path of the sweep and of a single expiry."""
    # A batch shares a handful of queues and runs: one query each, not a join per row.
    queues = Queue.objects.select_related("fallback").in_bulk({r.queue_id for r in batch})
    runs = AgentRun.objects.select_related("agent").in_bulk({r.run_id for r in batch})
    for review in batch:
        review.expire()
        review._moved_by_fsm = True
        review.expiry_action = behaviour or queues[review.queue_id].expiry_behaviour
        review.queue, review.run = queues[review.queue_id], runs[review.run_id]
    successors: dict[int, ReviewRequest] = {}
    for strategy in STRATEGIES:
        chosen = [r for r in batch if r.expiry_action == strategy.value]
        if chosen and strategy.follow_up is not None:
            successors.update(strategy.follow_up(chosen, now, actor))
    # Rows that end alike are written by one UPDATE (usually the whole batch).
    groups: dict[tuple, list[ReviewRequest]] = {}
    for review in batch:
        successor = successors.get(review.pk)
        review.rerouted_to = successor
        groups.setdefault((review.expiry_action, successor), []).append(review)
    for (action, successor), reviews in groups.items():
        if summary is not None:
            summary.count(action, len(reviews))
        ReviewRequest.objects.update_transitioned(
            reviews,
            sources=OPEN_STATES,
            state=ReviewState.EXPIRED,
            decided_at=now,
            updated_at=now,
            expiry_action=action,
            rerouted_to=successor,
        )
        reason = STRATEGY_BY_VALUE[action].reason(successor)
        _copy_to_history(reviews, now=now, actor=actor, reason=reason)
    _calls_follow(successors, now, actor)
    _refresh_runs({r.run_id for r in batch if not r.audit}, now, actor)
    for review in batch:
        if review.run.agent.callback_url:
            webhook_queue(review=review, event="review.expired")


def _copy_to_history(
    reviews: list[ReviewRequest], *, now: datetime, actor: Actor, reason: str
) -> None:
    """The history rows of just-updated reviews, copied inside the database in one
    INSERT ... SELECT: the same rows simple-history writes, without a Python object each."""
    history = ReviewRequest.history.model
    columns = history_tracked_columns(ReviewRequest)
    rows = (
        ReviewRequest.objects.filter(pk__ids_in=[r.pk for r in reviews])
        .order_by()
        .values_list(
            *columns,
            Value(actor.user.pk if actor.user else None, output_field=IntegerField()),
            Value(actor.label),
            Value(now),
            Value(reason),
            Value("~"),
        )
    )
    select, params = queryset_sql(rows)
    quote = connection.ops.quote_name
    target = ", ".join(
        quote(c)
        for c in [
            *columns,
            "history_user_id",
            "history_actor",
            "history_date",
            "history_change_reason",
            "history_type",
        ]
    )
    with connection.cursor() as cursor:
        # Names come from the models; every value is a parameter of the SELECT.
        cursor.execute(f"INSERT INTO {quote(history._meta.db_table)} ({target}) {select}", params)


def _calls_follow(successors: dict[int, ReviewRequest], now: datetime, actor: Actor) -> None:
    """A rerouted review's call is decided by its successor from now on."""
    if not successors:
        return
    calls = list(RunCall.objects.filter(review_id__in=list(successors)))
    for call in calls:
        call.review = successors[call.review_id]
        set_change_reason(call, f"its review was rerouted to {call.review.review_id}")
    RunCall.objects.bulk_update(calls, ["review"])
    RunCall.history.bulk_history_create(
        calls,
        update=True,
        default_date=now,
        default_user=actor.user,
        custom_historical_attrs={"history_actor": actor.label},
    )


def _refresh_runs(run_ids: set[int], now: datetime, actor: Actor) -> None:
    """The runs' statuses after a batch expired, in a fixed number of queries."""
    # EXISTS stops at a run's first open review; a DISTINCT over the batch's runs would read
    # all of them, and a run can hold thousands.
    still_open = ReviewRequest.objects.filter(
        run_id=OuterRef("pk"), state__in=OPEN_FOR_RUN, audit=False
    )
    changed = []
    for run in (
        for_update(AgentRun.objects.all(), of=("self",))
        .select_related("agent")
        .filter(pk__in=run_ids)
        .exclude(status__in=(RunStatus.COMPLETED, RunStatus.STOPPED))
        .annotate(waiting=Exists(still_open))
    ):
        status = run_status_after(
            current=run.status,
            has_open_reviews=run.waiting,
            taken_over=False,
            releases_person=False,
        )
        if status != run.status:
            run.status = status
            run.updated_at = now
            set_change_reason(run, "a review of this run expired")
            changed.append(run)
    AgentRun.objects.bulk_update(changed, ["status", "updated_at"])
    AgentRun.history.bulk_history_create(
        changed,
        update=True,
        default_date=now,
        default_user=actor.user,
        custom_historical_attrs={"history_actor": actor.label},
    )
    for run in changed:
        if run.status == RunStatus.RESUMABLE:
            run_webhook_queue(run=run, event="run.resumable")


# --- reminders --------------------------------------------------------------------------


def send_reminders(*, now: datetime | None = None, batch_size: int = 500) -> SweepSummary:
    """Remind before the SLA (the assignee, or the members when nobody is assigned) and
    after it (the assignee and, where the queue escalates, its owner), each step once,
    logged before sending. The first visit past the SLA is the breach: its notices (the
    chat, an owner's digest) are recorded once per review. Reminders are emails: people
    whose notifications are a digest or off get none."""
    now = now or timezone.now()
    summary = SweepSummary()
    outbox: list[tuple[Reminder, str, str, list[str]]] = []
    notices: list[int] = []
    with transaction.atomic(durable=True):
        due = list(
            for_update(ReviewRequest.objects.all(), skip_locked=True, of=("self",))
            .select_related(
                "queue__owner__notification_preference", "assignee__notification_preference"
            )
            .filter(
                state__in=(ReviewState.PENDING, ReviewState.ESCALATED),
                next_reminder_at__lte=now,
                expires_at__gt=now,
            )
            .order_by("next_reminder_at", "id")[:batch_size]
        )
        for review in due:
            kind = ReminderKind.BEFORE_SLA if now < review.due_at else ReminderKind.AFTER_SLA
            if kind == ReminderKind.AFTER_SLA and review.next_reminder_at <= review.due_at:
                # The cursor still at (or before) the SLA: this is the first visit past it.
                notices += notices_record(review=review, event=NotificationEvent.BREACHED, now=now)
            review.next_reminder_at = _following(review, kind, now)
            recipients = _recipients(review, kind)
            if not recipients:
                continue
            sequence = review.reminders.filter(kind=kind).count() + 1
            try:
                with transaction.atomic():
                    reminder = Reminder.objects.create(
                        review=review,
                        kind=kind,
                        sequence=sequence,
                        recipients=recipients,
                        sent_at=now,
                    )
            except IntegrityError:
                continue  # another sweep logged this step first
            subject, body = _message(review, kind, now, sequence)
            outbox.append((reminder, subject, body, recipients))
            summary.count(kind)
        ReviewRequest.objects.bulk_update(due, ["next_reminder_at"])
        transaction.on_commit(lambda: (_deliver(outbox), deliver_each(notices)))
    return summary


def _following(review: ReviewRequest, kind: str, now: datetime) -> datetime | None:
    if kind == ReminderKind.BEFORE_SLA:
        return review.due_at
    every = review.queue.remind_every
    return now + every if every is not None else None


def _recipients(review: ReviewRequest, kind: str) -> list[str]:
    queue = review.queue
    people = []
    if review.assignee_id:
        people.append(review.assignee)
    elif kind == ReminderKind.BEFORE_SLA:
        people.extend(
            queue.members.filter(is_active=True).select_related("notification_preference")
        )
    if kind == ReminderKind.AFTER_SLA and queue.owner_id and queue.notify_owner_on_breach:
        people.append(queue.owner)
    return sorted(
        {
            p.email
            for p in people
            if p.email
            and p.is_active
            and NotificationPreference.mode_of(p) == NotificationMode.IMMEDIATELY
        }
    )


def _message(review: ReviewRequest, kind: str, now: datetime, sequence: int) -> tuple[str, str]:
    queue = review.queue
    if kind == ReminderKind.BEFORE_SLA:
        minutes = int((review.due_at - now).total_seconds() // 60)
        subject = f"[hitl] Due in {minutes} min: {review.summary[:80]}"
    elif sequence == 1:
        subject = f"[hitl] SLA breached in {queue.name}: {review.summary[:80]}"
    else:
        minutes = int((now - review.due_at).total_seconds() // 60)
        subject = f"[hitl] Overdue by {minutes} min: {review.summary[:80]}"
    escalated = (
        f"The SLA passed: escalated to {queue.owner.get_username()}, the queue's owner.\n"
        if kind == ReminderKind.AFTER_SLA and queue.owner_id and queue.notify_owner_on_breach
        else ""
    )
    body = (
        escalated
        + f"{review.get_kind_display()} review {review.review_id} in {review.queue.name}\n"
        f"{review.consequence or review.action_name}\n\n"
        f"Due: {review.due_at:%Y-%m-%d %H:%M %Z}. Expires: {review.expires_at:%Y-%m-%d %H:%M %Z}.\n"
        f"{review_link(review)}\n"
    )
    return subject, body


def _deliver(outbox) -> None:
    for reminder, subject, body, recipients in outbox:
        try:
            send_mail(subject, body, None, recipients)
        except Exception as exc:
            logger.warning("Reminder %s could not be sent: %s", reminder.pk, exc)
            Reminder.objects.filter(pk=reminder.pk).update(error=str(exc)[:1000])
