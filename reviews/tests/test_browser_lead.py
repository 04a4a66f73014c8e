"""A lead sets a queue's times in words in a real browser (Playwright, Debian's Chromium)."""

import os
from datetime import timedelta

import pytest
from django.core.management import call_command

from reviews.models import Queue
from reviews.tests.test_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, login, pytestmark  # noqa: F401


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


def test_a_lead_sets_a_queues_times_in_words(lead_page):
    page, base = lead_page
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
