"""A queue someone hears of: an owner or members, an SLA within its expiry, durations typed
and shown in words, and the system check that flags the queues from before."""

from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.urls import reverse

from reviews.checks import queues_someone_hears
from reviews.exceptions import InvalidReviewInput
from reviews.forms import DurationInWordsField, duration_in_words, parse_duration_words
from reviews.models import Queue
from reviews.services import queue_save
from reviews.tests.factories import QueueFactory, UserFactory


@pytest.mark.parametrize(
    "text, expected",
    [
        ("4 hours", timedelta(hours=4)),
        ("2 days 3 hours", timedelta(days=2, hours=3)),
        ("90 minutes", timedelta(minutes=90)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5 hours", timedelta(minutes=90)),
        ("2 days, 3 hours and 5 minutes", timedelta(days=2, hours=3, minutes=5)),
        ("1 week", timedelta(days=7)),
        ("30 min", timedelta(minutes=30)),
        ("01:30:00", timedelta(minutes=90)),
        ("3 00:00:00", timedelta(days=3)),
        ("P2D", timedelta(days=2)),
        ("4 parsecs", None),
        ("hours", None),
        ("4 hours later", None),
        ("", None),
    ],
)
def test_durations_are_read_in_words(text, expected):
    assert parse_duration_words(text) == expected


@pytest.mark.parametrize(
    "value, words",
    [
        (timedelta(hours=4), "4 hours"),
        (timedelta(days=2, hours=3), "2 days 3 hours"),
        (timedelta(minutes=90), "1 hour 30 minutes"),
        (timedelta(days=1), "1 day"),
        (timedelta(seconds=45), "45 seconds"),
        (timedelta(0), "0 minutes"),
        (None, "—"),
    ],
)
def test_durations_are_shown_in_words(value, words):
    assert duration_in_words(value) == words


@pytest.mark.parametrize("text", ["soon", "4 parsecs", "99999999999 days", "9" * 40])
def test_bad_durations_are_form_errors(text):
    field = DurationInWordsField()
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        field.clean(text)


@pytest.mark.django_db
def test_a_queue_needs_an_owner_or_members():
    lead = UserFactory(is_superuser=True)
    queue = Queue(name="Nobody", slug="nobody")
    with pytest.raises(InvalidReviewInput) as refused:
        queue_save(actor=lead, queue=queue)
    assert "owner" in refused.value.field_errors and "members" in refused.value.field_errors
    queue_save(actor=lead, queue=queue, members=[UserFactory()])  # members are enough
    with pytest.raises(InvalidReviewInput):
        queue_save(actor=lead, queue=queue, members=[])  # ...until the last one leaves


@pytest.mark.django_db
def test_an_sla_longer_than_the_expiry_is_refused():
    queue = QueueFactory()
    queue.sla, queue.expiry = timedelta(days=3), timedelta(days=2)
    with pytest.raises(InvalidReviewInput) as refused:
        queue_save(actor=queue.owner, queue=queue)
    assert "longer than the expiry" in refused.value.field_errors["sla"][0]


@pytest.mark.django_db
def test_the_system_check_flags_queues_nobody_hears_of():
    assert queues_someone_hears(None) == []
    QueueFactory(slug="orphan", owner=None)
    staffed = QueueFactory(slug="staffed", owner=None)
    staffed.members.add(UserFactory())
    QueueFactory(slug="late", sla=timedelta(days=4), expiry=timedelta(days=1))
    warnings = {w.id: w.msg for w in run_checks()}
    assert "orphan" in warnings["reviews.W001"] and "staffed" not in warnings["reviews.W001"]
    assert "late" in warnings["reviews.W002"]


@pytest.fixture
def admin_client_(client):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return client


def queue_form(queue, **changes):
    data = {
        "name": queue.name,
        "slug": queue.slug,
        "owner": queue.owner_id,
        "members": [],
        "sla": "4 hours",
        "remind_before": "30 minutes",
        "remind_every": "1 hour",
        "expiry": "2 days",
        "expiry_behaviour": "cancel",
        "notify_owner_on_breach": "on",
        "chat_webhook_url": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.django_db
def test_the_queue_admin_takes_and_shows_words(admin_client_):
    queue = QueueFactory()
    url = reverse("admin:reviews_queue_change", args=[queue.pk])
    response = admin_client_.post(url, queue_form(queue))
    assert response.status_code == 302, response.content.decode()[:3000]
    queue.refresh_from_db()
    assert (queue.sla, queue.expiry) == (timedelta(hours=4), timedelta(days=2))
    page = admin_client_.get(url).content.decode()
    assert 'value="4 hours"' in page and 'value="2 days"' in page
    listing = admin_client_.get(reverse("admin:reviews_queue_changelist")).content.decode()
    assert "4 hours" in listing and "2 days" in listing and "00:00" not in listing


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"sla": "3 days"}, "sla", "longer than the expiry"),
        ({"sla": "whenever"}, "sla", "Enter a duration like"),
        ({"expiry": "99999999999 days"}, "expiry", "ten years"),
        ({"chat_webhook_url": "http://hooks.example.com/x"}, "chat_webhook_url", "https"),
        ({"owner": ""}, "owner", "owner or at least one member"),
    ],
)
def test_bad_queue_settings_are_form_errors_not_500s(admin_client_, changes, field, message):
    queue = QueueFactory()
    url = reverse("admin:reviews_queue_change", args=[queue.pk])
    response = admin_client_.post(url, queue_form(queue, **changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors.get(field, [])), errors


@pytest.mark.django_db
def test_the_chat_webhook_is_never_shown_back(admin_client_, settings):
    secret = "https://hooks.slack.com/services/T000/B000/verysecretXYZ9"
    queue = QueueFactory()
    url = reverse("admin:reviews_queue_change", args=[queue.pk])
    assert admin_client_.post(url, queue_form(queue, chat_webhook_url=secret)).status_code == 302
    queue.refresh_from_db()
    assert queue.chat_webhook_url == secret
    assert "chat webhook set" in queue.history.first().history_change_reason
    page = admin_client_.get(url).content.decode()
    listing = admin_client_.get(reverse("admin:reviews_queue_changelist")).content.decode()
    assert "verysecret" not in page and "verysecret" not in listing
    assert "hooks.slack.com/…XYZ9" in listing
    # Saved again without typing it: kept; ticking Remove: gone.
    admin_client_.post(url, queue_form(queue))
    queue.refresh_from_db()
    assert queue.chat_webhook_url == secret
    admin_client_.post(url, queue_form(queue, chat_webhook_remove="on"))
    queue.refresh_from_db()
    assert queue.chat_webhook_url == ""
