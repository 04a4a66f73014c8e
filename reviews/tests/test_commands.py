"""seed_demo and the migrations check."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from reviews.models import AgentRun, Queue, ReviewRequest


@pytest.mark.django_db
def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert not Queue.objects.exists()


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_reviewers_see_different_inboxes(client):
    out = StringIO()
    call_command("seed_demo", "--force", "--history", "0", stdout=out)
    assert "password 'demo'" in out.getvalue()
    counts = (ReviewRequest.objects.count(), AgentRun.objects.count(), Queue.objects.count())
    call_command("seed_demo", "--force", "--history", "0", stdout=StringIO())
    assert counts == (
        ReviewRequest.objects.count(),
        AgentRun.objects.count(),
        Queue.objects.count(),
    )
    for queue in Queue.objects.filter(tenant=""):
        assert set(queue.reviews.values_list("kind", flat=True)) == {
            "approval",
            "edit",
            "escalation",
        }

    seen = {}
    for username in ("reviewer", "reviewer2", "globex"):
        assert client.login(username=username, password="demo")
        page = client.get(reverse("admin:reviews_approvalreview_changelist"))
        assert page.status_code == 200
        seen[username] = {
            r.review_id
            for r in ReviewRequest.objects.filter(kind="approval")
            if r.review_id in page.text
        }
        client.logout()
    assert seen["reviewer"] and seen["reviewer2"] and seen["globex"]
    assert not seen["reviewer"] & seen["reviewer2"]
    # The second tenant: its lead sees its reviews only, and nobody of the default tenant does.
    globex = set(ReviewRequest.objects.filter(tenant="globex").values_list("review_id", flat=True))
    assert seen["globex"] and seen["globex"] <= globex
    assert not (seen["reviewer"] | seen["reviewer2"]) & globex
    assert set(Queue.objects.filter(tenant="globex").values_list("slug", flat=True)) == {
        "operations"
    }


@pytest.mark.django_db
def test_migrations_are_complete():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())
