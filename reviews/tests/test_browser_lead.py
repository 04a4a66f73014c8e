"""A lead sets a queue's times in words in a real browser (Playwright, Debian's Chromium)."""

from datetime import timedelta

from hitl.tests.browser import ARTIFACTS, BROWSER_MARKS, login
from reviews.models import Queue

pytestmark = BROWSER_MARKS


def test_a_lead_sets_a_queues_times_in_words(browser_page):
    page, base = browser_page
    login(page, base, "lead")
    queue = Queue.objects.get(tenant="", slug="operations")
    url = f"{base}/admin/reviews/queue/{queue.pk}/change/"
    page.goto(url)
    page.fill("#id_sla", "4 hours")
    page.fill("#id_expiry", "2 days")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    assert page.input_value("#id_sla") == "4 hours"
    assert page.input_value("#id_expiry") == "2 days"
    queue.refresh_from_db()
    assert (queue.sla, queue.expiry) == (timedelta(hours=4), timedelta(days=2))

    # An SLA longer than the expiry: refused, next to the field, with what was typed kept.
    page.fill("#id_sla", "3 days")
    page.click("input[name=_continue]")
    page.wait_for_selector(".errorlist")
    assert "longer than the expiry" in page.inner_text(".field-sla")
    assert page.input_value("#id_sla") == "3 days"
    page.screenshot(path=str(ARTIFACTS / "queue-settings.png"), full_page=True)
    queue.refresh_from_db()
    assert queue.sla == timedelta(hours=4)

    # The list shows the times in words too.
    page.goto(f"{base}/admin/reviews/queue/")
    row = page.inner_text(f"#result_list tr:has-text('{queue.name}')")
    assert "4 hours" in row and "2 days" in row
