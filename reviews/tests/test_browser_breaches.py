"""A lead finds the reviews past their SLA and hands one to another reviewer, in a real
browser (Playwright driving Debian's Chromium)."""

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from reviews.models import Queue, ReviewRequest
from reviews.services import review_assign
from reviews.tests.factories import make_review

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SUMMARY = "Refund a parcel lost in transit on order 4242."

pytestmark = [
    pytest.mark.real_clock,
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
        reason="browser: needs Debian's chromium (apt-get install chromium)",
    ),
]


@pytest.fixture
def lead_page(live_server, transactional_db, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    call_command("seed_demo", "--force", "--history", "0", stdout=open(os.devnull, "w"))  # noqa: SIM115
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        yield page, live_server.url
        browser.close()


@pytest.fixture
def breached(lead_page):
    """A refund in customer operations, assigned to reviewer, an hour past its SLA; reviewer2
    works that queue too, so the lead can hand it over."""
    users = {u.username: u for u in get_user_model().objects.all()}
    queue = Queue.objects.get(slug="operations", tenant="")
    queue.members.add(users["reviewer2"])
    now = timezone.now()
    review = make_review(
        queue=queue,
        run_id="browser-breached-4242",
        summary=SUMMARY,
        arguments={"order_id": "4242", "amount": "45.00", "currency": "EUR"},
        consequence="Approving will refund 45.00 EUR to order 4242.",
        due_at=now - timedelta(hours=1),
        expires_at=now + timedelta(hours=20),
    )
    review_assign(review_id=review.review_id, actor=users["lead"], assignee=users["reviewer"])
    return review


def login(page, base, username):
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "demo")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def test_lead_reassigns_a_breached_review_from_the_breaches_list(lead_page, breached):
    page, base = lead_page
    login(page, base, "lead")

    # From the metrics dashboard, the lead follows its link to the SLA breaches.
    page.goto(f"{base}/admin/reviews/reviewrequest/metrics/")
    link = page.get_by_role("link", name=re.compile(r"SLA breach", re.IGNORECASE)).first
    if link.count() == 0:
        pytest.fail(
            "The metrics page (templates/admin/reviews/metrics.html) has no SLA breaches link"
        )
    link.click()
    page.wait_for_selector("#result_list")
    listed = page.inner_text("#result_list")
    assert SUMMARY in listed
    # Only reviews past their SLA are listed: none of the demo's fresh ones.
    assert "Refund a damaged mug on order 17." not in listed

    row = page.locator("#result_list tbody tr", has_text=SUMMARY)
    assert "reviewer" in row.inner_text()
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "assign_selected")
    assignee = page.locator("select[name=assignee]")
    if assignee.count() == 0:
        pytest.fail("The inbox's action bar offers no 'Assign to' choice (reviews/admin/inbox.py)")
    assignee.select_option(label="reviewer2")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    assert "Assigned 1 review(s) to reviewer2." in page.inner_text(".messagelist")

    # Back on the breaches list, the row now names its new assignee.
    row = page.locator("#result_list tbody tr", has_text=SUMMARY)
    assert "reviewer2" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "breaches.png"), full_page=True)
    breached.refresh_from_db()
    assert breached.assignee.username == "reviewer2"
    assert ReviewRequest.history.filter(id=breached.pk).latest().history_change_reason == (
        "assigned to reviewer2"
    )
