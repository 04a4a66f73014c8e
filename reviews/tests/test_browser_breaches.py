"""A lead finds the reviews past their SLA and hands one to another reviewer, in a real
browser (Playwright driving Debian's Chromium)."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from hitl.tests.browser import ARTIFACTS, BROWSER_MARKS, login
from reviews.models import Queue, ReviewRequest
from reviews.services import review_assign
from reviews.tests.factories import make_review

pytestmark = BROWSER_MARKS

SUMMARY = "Refund a parcel lost in transit on order 4242."


@pytest.fixture
def breached(browser_page):
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


def test_lead_reassigns_a_breached_review_from_the_breaches_list(browser_page, breached):
    page, base = browser_page
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
