"""queue_save: a queue's settings and members in one audited transaction."""

from datetime import timedelta

import pytest

from reviews.exceptions import InvalidReviewInput
from reviews.models import Queue
from reviews.services import queue_save
from reviews.tests.factories import QueueFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead():
    return UserFactory(username="lena")


@pytest.fixture
def rita():
    return UserFactory(username="rita")


@pytest.fixture
def remy():
    return UserFactory(username="remy")


def members_of(row) -> set[int]:
    return {member.user_id for member in row.members.all()}


def test_a_new_queue_and_its_members_are_in_its_history(lead, rita, remy):
    queue = queue_save(
        actor=lead, queue=Queue(name="Refunds", slug="refunds", owner=lead), members=[rita, remy]
    )
    assert set(queue.members.all()) == {rita, remy}
    created, named = queue.history.order_by("history_id")
    assert (created.history_type, created.history_change_reason) == ("+", "created")
    assert (named.history_type, named.history_change_reason) == ("~", "members added: remy, rita")
    for row in (created, named):
        assert (row.history_user, row.history_actor) == (lead, "user:lena")
    assert members_of(named) == {rita.pk, remy.pk}


def test_a_change_of_settings_and_members_is_one_history_row(lead, rita, remy):
    queue = QueueFactory(owner=lead)
    queue.members.add(rita)
    before = queue.history.count()
    queue.sla = timedelta(hours=2)
    queue_save(actor=lead, queue=queue, members=[remy])
    assert list(queue.members.all()) == [remy]
    assert queue.history.count() == before + 1
    row = queue.history.latest()
    assert row.history_change_reason == (
        "settings changed; members added: remy; members removed: rita"
    )
    assert (row.history_user, row.sla, members_of(row)) == (lead, timedelta(hours=2), {remy.pk})


def test_without_members_the_members_stay(lead, rita):
    queue = QueueFactory(owner=lead)
    queue.members.add(rita)
    queue.name = "Renamed"
    queue_save(actor=lead, queue=queue)
    row = queue.history.latest()
    assert (row.name, row.history_change_reason, members_of(row)) == (
        "Renamed",
        "settings changed",
        {rita.pk},
    )


def test_bad_settings_are_refused_and_nothing_is_saved(lead, rita, remy):
    queue = QueueFactory(owner=lead)
    queue.members.add(rita)
    before = queue.history.count()
    queue.sla = timedelta(0)
    with pytest.raises(InvalidReviewInput) as refused:
        queue_save(actor=lead, queue=queue, members=[remy])
    assert refused.value.field_errors == {"sla": ["The SLA must be positive."]}
    assert list(queue.members.all()) == [rita]
    assert queue.history.count() == before
    assert Queue.objects.get(pk=queue.pk).sla != timedelta(0)


def test_a_queue_never_changes_tenant(lead, rita):
    from policies.models import Tenant

    Tenant.objects.create(slug="globex", name="Globex")
    queue = QueueFactory(owner=lead)
    before = queue.history.count()
    queue.tenant = "globex"
    with pytest.raises(InvalidReviewInput) as refused:
        queue_save(actor=lead, queue=queue, members=[rita])
    assert "tenant" in refused.value.field_errors
    assert Queue.objects.get(pk=queue.pk).tenant == ""
    assert (queue.history.count(), queue.members.count()) == (before, 0)


@pytest.mark.django_db
def test_queue_fallback_cannot_loop():
    from django.core.exceptions import ValidationError

    a = QueueFactory()
    b = QueueFactory(fallback=a)
    a.fallback = b
    with pytest.raises(ValidationError, match="loops"):
        a.full_clean()


@pytest.mark.django_db
def test_a_queue_is_deleted_only_when_nothing_depends_on_it():
    from reviews.services.queues import queue_delete
    from reviews.tests.factories import make_review

    lead = UserFactory(username="lee")
    busy, spare, leaning = QueueFactory(), QueueFactory(), QueueFactory()
    make_review(queue=busy)
    leaning.fallback = spare
    leaning.save()
    with pytest.raises(InvalidReviewInput, match="holds reviews"):
        queue_delete(actor=lead, queue=busy)
    with pytest.raises(InvalidReviewInput, match="is the fallback of"):
        queue_delete(actor=lead, queue=spare)
    assert Queue.objects.filter(pk__in=[busy.pk, spare.pk]).count() == 2
    leaning.fallback = None
    leaning.save()
    queue_delete(actor=lead, queue=spare)
    assert not Queue.objects.filter(pk=spare.pk).exists()
    gone = Queue.history.filter(id=spare.pk).latest("history_date")
    assert (gone.history_type, gone.history_user, gone.history_change_reason) == (
        "-",
        lead,
        "deleted",
    )
