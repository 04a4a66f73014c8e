"""Notifications: who hears of a new review, a breach and an escalation, how (their
preference), the queue's chat webhook, and that nothing is sent twice."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from reviews import tasks
from reviews.models import (
    Notification,
    NotificationChannel,
    NotificationPreference,
    NotificationStatus,
    Queue,
)
from reviews.services import review_assign, review_escalate
from reviews.services.notifications import (
    digests_send,
    notification_preference_set,
    notifications_retry_due,
    notify,
)
from reviews.services.sweeps import send_reminders
from reviews.tests.factories import QueueFactory, UserFactory, make_review
from reviews.tests.test_webhooks import Receiver


@pytest.fixture(autouse=True)
def _mail_and_loopback(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.HITL_CHAT_ALLOW_LOOPBACK_HTTP = True
    settings.HITL_BASE_URL = "https://hitl.example.com"


def prefer(user, mode):
    return notification_preference_set(actor=user, user=user, mode=mode)


def recipients():
    return sorted(address for message in mail.outbox for address in message.to)


@pytest.mark.django_db
def test_a_new_review_is_announced_to_the_members_once(queue, reviewer, reviewer2, settings):
    review = make_review(queue=queue, summary="Refund order 17")
    assert notify(review_id=review.review_id, event="arrived") == 2
    assert recipients() == sorted([reviewer.email, reviewer2.email])
    message = mail.outbox[0]
    assert message.subject == "[hitl] New approval review in Operations: Refund order 17"
    assert f"https://hitl.example.com/admin/reviews/approvalreview/{review.pk}/change/" in (
        message.body
    )
    # The worker retried the task: everything was recorded, nothing goes out again.
    assert notify(review_id=review.review_id, event="arrived") == 0
    assert len(mail.outbox) == 2
    assert Notification.objects.filter(status=NotificationStatus.SENT).count() == 2


@pytest.mark.django_db
def test_the_signal_queues_the_notice_after_commit(
    queue, reviewer, settings, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=True):
        make_review(queue=queue)
    assert OrmQ.objects.count() == 1  # a worker task, not an email in the agent's request
    assert mail.outbox == []
    settings.HITL_NOTIFY_SYNC = True
    with django_capture_on_commit_callbacks(execute=True):
        make_review(queue=queue)
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_the_assignee_alone_hears_and_an_empty_queue_falls_back_to_its_owner(
    queue, reviewer, reviewer2
):
    review = make_review(queue=queue)
    review_assign(review_id=review.review_id, actor=queue.owner, assignee=reviewer2)
    notify(review_id=review.review_id, event="arrived")
    assert recipients() == [reviewer2.email]
    mail.outbox.clear()
    lonely = QueueFactory()  # an owner, no members
    notify(review_id=make_review(queue=lonely).review_id, event="arrived")
    assert recipients() == [lonely.owner.email]


@pytest.mark.django_db
def test_preferences_digest_and_off(queue, reviewer, reviewer2, clock):
    prefer(reviewer, "digest")
    prefer(reviewer2, "off")
    first = make_review(queue=queue, summary="Refund order 17")
    second = make_review(queue=queue, summary="Refund order 18")
    decided = make_review(queue=queue, summary="Refund order 19")
    for review in (first, second, decided):
        notify(review_id=review.review_id, event="arrived")
    assert mail.outbox == []  # digest waits, off never hears
    assert not Notification.objects.filter(recipient=reviewer2).exists()
    from reviews.services import review_reject

    review_reject(review_id=decided.review_id, reviewer=reviewer2, reason="not needed")
    assert digests_send() == 1
    (digest,) = mail.outbox
    assert digest.to == [reviewer.email]
    assert "2 review(s)" in digest.subject
    assert "Refund order 17" in digest.body and "Refund order 18" in digest.body
    assert "Refund order 19" not in digest.body  # decided meanwhile: not listed
    assert digests_send() == 0  # nothing twice
    statuses = dict(
        Notification.objects.filter(recipient=reviewer).values_list("review__summary", "status")
    )
    assert statuses["Refund order 19"] == NotificationStatus.SKIPPED


@pytest.mark.django_db
def test_only_oneself_or_an_admin_sets_a_preference(reviewer, reviewer2):
    from reviews.exceptions import InvalidReviewInput, NotAuthorized

    with pytest.raises(NotAuthorized):
        notification_preference_set(actor=reviewer, user=reviewer2, mode="off")
    with pytest.raises(InvalidReviewInput):
        notification_preference_set(actor=reviewer, user=reviewer, mode="sometimes")
    admin = UserFactory(is_superuser=True, is_staff=True)
    notification_preference_set(actor=admin, user=reviewer2, mode="off")
    preference = NotificationPreference.objects.get(user=reviewer2)
    assert preference.mode == "off"
    assert preference.history.first().history_user == admin


@pytest.mark.django_db
def test_a_person_edits_their_own_preference_in_the_admin(client, reviewer, reviewer2):
    reviewer.is_staff = True
    reviewer.save()
    prefer(reviewer2, "off")
    client.force_login(reviewer)
    url = reverse("admin:reviews_notificationpreference_changelist")
    add = client.get(url)
    assert add.status_code == 302 and add.url.endswith("/add/")
    response = client.post(add.url, {"mode": "digest"})
    assert response.status_code == 302, response.content[:2000]
    mine = NotificationPreference.objects.get(user=reviewer)
    assert mine.mode == "digest"
    assert client.get(url).url.endswith(f"/{mine.pk}/change/")
    theirs = NotificationPreference.objects.get(user=reviewer2)
    change = reverse("admin:reviews_notificationpreference_change", args=[theirs.pk])
    assert client.post(change, {"mode": "immediately"}).status_code in (302, 403)
    theirs.refresh_from_db()
    assert theirs.mode == "off"


@pytest.mark.django_db
def test_an_escalation_tells_the_escalation_owner(queue, reviewer, clock):
    boss = UserFactory(username="boss")
    queue.escalation_owner = boss
    queue.save()
    review = make_review(queue=queue)
    review_escalate(review_id=review.review_id, reviewer=reviewer, reason="too large")
    notify(review_id=review.review_id, event="escalated")
    assert recipients() == [boss.email]
    assert mail.outbox[0].subject.startswith("[hitl] Escalated to boss in Operations")


def chat_queue(url, **fields):
    queue = QueueFactory(
        sla=timedelta(hours=4),
        remind_before=timedelta(minutes=30),
        chat_webhook_url=url,
        **fields,
    )
    queue.members.add(UserFactory())
    return queue


@pytest.mark.django_db
def test_the_chat_hears_arrivals_as_slack_messages():
    with Receiver() as receiver:
        queue = chat_queue(receiver.url, name="Customer operations")
        review = make_review(queue=queue, summary="Refund <order> 17 & more")
        notify(review_id=review.review_id, event="arrived")
        notify(review_id=review.review_id, event="arrived")
    (request,) = receiver.requests
    headers, body = request
    assert headers["Content-Type"] == "application/json"
    message = json.loads(body)
    link = f"https://hitl.example.com/admin/reviews/approvalreview/{review.pk}/change/"
    assert message["text"].startswith("New approval review in Customer operations")
    section = message["blocks"][0]["text"]["text"]
    assert f"<{link}|Refund &lt;order&gt; 17 &amp; more>" in section
    assert message["blocks"][2]["elements"][0]["url"] == link


@pytest.mark.django_db
def test_a_failing_chat_is_retried_later_not_lost_nor_doubled(clock):
    with Receiver(status=500) as receiver:
        queue = chat_queue(receiver.url)
        review = make_review(queue=queue)
        notify(review_id=review.review_id, event="arrived")
        chat = Notification.objects.get(channel=NotificationChannel.CHAT)
        assert (chat.status, chat.attempts, chat.last_error) == ("pending", 1, "HTTP 500")
        receiver.status = 200
        assert notifications_retry_due() == 0  # the backoff is not over
        clock.shift(timedelta(minutes=2))
        assert notifications_retry_due() == 1
        assert notifications_retry_due() == 0
    chat.refresh_from_db()
    assert (chat.status, chat.attempts) == ("sent", 2)
    assert len(receiver.requests) == 2  # one refused, one delivered


@pytest.mark.django_db
def test_a_breach_escalates_to_the_owner_once(django_capture_on_commit_callbacks):
    start = timezone.now()
    with Receiver() as receiver:
        queue = chat_queue(receiver.url, name="Ops")
        owner = queue.owner
        with time_machine.travel(start, tick=False):
            review = make_review(queue=queue, summary="Refund order 17")

        def sweep(hours, minutes=0):
            mail.outbox.clear()
            with (
                time_machine.travel(start + timedelta(hours=hours, minutes=minutes), tick=False),
                django_capture_on_commit_callbacks(execute=True),
            ):
                send_reminders()
            return recipients()

        assert owner.email not in sweep(3, 30)  # before the SLA: the members
        assert sweep(4) == [owner.email]  # the breach: the owner, by email...
        assert "SLA breached in Ops" in mail.outbox[0].subject
        assert "escalated to" in mail.outbox[0].body
        sweep(5)
        sweep(6)
    # ...and the chat, once, however often the sweep comes back.
    texts = [json.loads(body)["text"] for _, body in receiver.requests]
    assert [t.split(":")[0] for t in texts] == [f"SLA breached in Ops, escalated to {owner}"]
    assert Notification.objects.filter(review=review, event="breached").count() == 1


@pytest.mark.django_db
def test_a_queue_that_does_not_escalate_and_an_owner_on_digest(django_capture_on_commit_callbacks):
    start = timezone.now()
    quiet = chat_queue("", notify_owner_on_breach=False)
    digesting = chat_queue("")
    prefer(digesting.owner, "digest")
    with time_machine.travel(start, tick=False):
        reviews = [make_review(queue=q) for q in (quiet, digesting)]
    with (
        time_machine.travel(start + timedelta(hours=4), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        send_reminders()
    assert mail.outbox == []  # neither owner gets an email
    (notice,) = Notification.objects.all()
    assert (notice.review, notice.recipient, notice.channel) == (
        reviews[1],
        digesting.owner,
        NotificationChannel.DIGEST,
    )
    assert digests_send() == 1
    assert "SLA breached" in mail.outbox[0].body


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://hooks.example.com/x", "must use https"),
        ("ftp://hooks.example.com/x", "Expected an https"),
        ("https://user:pw@hooks.example.com/x", "no user or password"),
        ("https://hooks.example.com:99999/x", "Not a URL"),
        ("https:///nohost", "Expected an https"),
    ],
)
def test_a_chat_webhook_must_be_https(url, problem):
    from django.core.exceptions import ValidationError

    queue = QueueFactory.build(chat_webhook_url=url)
    with pytest.raises(ValidationError, match=problem):
        queue.clean()


@pytest.mark.django_db
def test_loopback_http_only_where_allowed(settings):
    from reviews.models.queues import chat_webhook_problem, masked_url

    assert chat_webhook_problem("http://127.0.0.1:8080/hook") == ""
    settings.HITL_CHAT_ALLOW_LOOPBACK_HTTP = False
    assert "disabled here" in chat_webhook_problem("http://127.0.0.1:8080/hook")
    url = "https://hooks.slack.com/services/T000/B000/abcdXYZ9"
    assert masked_url(url) == "https://hooks.slack.com/…XYZ9"
    assert Queue(chat_webhook_url=url).chat_webhook_hint == "https://hooks.slack.com/…XYZ9"


# --- the worker's entry points, as it runs them (PostgreSQL, autocommit) ------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_worker_entry_points_send_once(clock):
    reviewer = UserFactory(username="rita")
    digester = UserFactory(username="dora")
    prefer(digester, "digest")
    with Receiver(status=503) as receiver:
        queue = chat_queue(receiver.url)
        queue.members.set([reviewer, digester])
        review = make_review(queue=queue)
        assert tasks.notify(review.review_id, "arrived") == "sent 1"  # the email; chat 503
        assert tasks.notify(review.review_id, "arrived") == "sent 0"  # a duplicate task
        receiver.status = 200
        clock.shift(timedelta(minutes=5))
        assert tasks.retry_notifications() == 1
        assert tasks.retry_notifications() == 0
        assert tasks.send_digests() == "digests sent: 1"
        assert tasks.send_digests() == "digests sent: 0"
    assert len(receiver.requests) == 2
    assert recipients() == sorted([reviewer.email, digester.email])
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}
