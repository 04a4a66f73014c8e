"""Admin screens: scoping to the reviewer's queues, and history that cannot be reverted."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from reviews.models import ReviewState
from reviews.services import review_approve
from reviews.tests.factories import QueueFactory, UserFactory, make_review

VIEW_PERMS = [
    "view_approvalreview",
    "view_editreview",
    "view_escalationreview",
    "view_reviewrequest",
]


def staff_reviewer(username):
    user = UserFactory(username=username)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="reviews", codename__in=VIEW_PERMS)
    )
    return user


@pytest.fixture
def two_queues(db):
    rita, remy = staff_reviewer("rita"), staff_reviewer("remy")
    ops, access = QueueFactory(slug="ops"), QueueFactory(slug="access")
    mine = make_review(queue=ops, reviewers=[rita], summary="Refund in the ops queue")
    theirs = make_review(queue=access, reviewers=[remy], summary="Grant in the access queue")
    return rita, mine, theirs


def change_url(review):
    return reverse("admin:reviews_approvalreview_change", args=[review.pk])


@pytest.mark.django_db
def test_reviewer_sees_only_their_queues(client, two_queues):
    rita, mine, theirs = two_queues
    client.force_login(rita)
    page = client.get(reverse("admin:reviews_approvalreview_changelist"))
    assert page.status_code == 200
    assert mine.summary in page.text
    assert theirs.summary not in page.text
    assert client.get(change_url(mine)).status_code == 200
    assert client.get(change_url(theirs)).status_code == 302  # admin: "doesn't exist"


@pytest.mark.django_db
def test_kinds_have_their_own_screens(client, queue, reviewer):
    reviewer.is_superuser = True
    reviewer.save()
    edit = make_review(queue=queue, kind="edit", action_name="draft_reply", content="Hi")
    client.force_login(reviewer)
    edits = client.get(reverse("admin:reviews_editreview_changelist"))
    approvals = client.get(reverse("admin:reviews_approvalreview_changelist"))
    assert edit.review_id in edits.text
    assert edit.review_id not in approvals.text


@pytest.mark.django_db
def test_history_is_readable_and_revert_is_refused(admin_client, queue, reviewer):
    review = make_review(queue=queue)
    review_approve(review_id=review.review_id, reviewer=reviewer)
    first = review.history.earliest()
    history = admin_client.get(reverse("admin:reviews_approvalreview_history", args=[review.pk]))
    assert history.status_code == 200
    assert "approve" in history.text

    url = reverse("admin:reviews_approvalreview_simple_history", args=[review.pk, first.history_id])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"summary": "reverted"})
    assert response.status_code == 403
    review.refresh_from_db()
    assert review.state == ReviewState.APPROVED


@pytest.mark.django_db
def test_reviews_cannot_be_added_or_changed_in_the_plain_admin(admin_client, review):
    add = admin_client.get(reverse("admin:reviews_approvalreview_add"))
    assert add.status_code == 403
    response = admin_client.post(change_url(review), {"summary": "changed"})
    review.refresh_from_db()
    assert review.summary != "changed"
    assert response.status_code in (200, 302, 403)
    delete = admin_client.post(
        reverse("admin:reviews_approvalreview_delete", args=[review.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403


@pytest.mark.django_db
def test_queue_admin_refuses_a_fallback_loop(admin_client):
    a = QueueFactory(slug="a", name="A")
    b = QueueFactory(slug="b", name="B", fallback=a)
    response = admin_client.post(
        reverse("admin:reviews_queue_change", args=[a.pk]),
        {
            "name": "A",
            "slug": "a",
            "tenant": "",
            "sla": "04:00:00",
            "expiry": "3 00:00:00",
            "expiry_behaviour": "cancel",
            "fallback": b.pk,
        },
    )
    assert response.status_code == 200
    assert "loops back" in response.text
    a.refresh_from_db()
    assert a.fallback is None


@pytest.mark.django_db
def test_runs_and_queues_are_scoped_too(client, two_queues):
    rita, mine, theirs = two_queues
    rita.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_agentrun", "view_queue"])
    )
    client.force_login(rita)
    runs = client.get(reverse("admin:reviews_agentrun_changelist"))
    assert mine.run.run_id in runs.text
    assert theirs.run.run_id not in runs.text
    queues = client.get(reverse("admin:reviews_queue_changelist"))
    assert mine.queue.slug in queues.text
    assert theirs.queue.slug not in queues.text


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_inbox_query_count_does_not_grow_with_rows(
    client, queue, reviewer, django_assert_num_queries
):
    url = reverse("admin:reviews_approvalreview_changelist")
    reviewer.user_permissions.add(*Permission.objects.filter(codename__in=VIEW_PERMS))
    client.force_login(reviewer)
    make_review(queue=queue)
    client.get(url)  # warm caches (content types, sessions) before counting
    few = count_queries(client, url)
    for _ in range(15):
        make_review(queue=queue)
    with django_assert_num_queries(few):
        assert client.get(url).status_code == 200
