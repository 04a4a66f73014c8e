"""Every demo user's main screens fit a 1280x900 laptop screen (no page scrolls sideways, no
table hides columns behind a scrollbar), and the admin publishes a rule set through its
confirmation page, in Chromium (Playwright)."""

from django.urls import reverse

from evaluation.models import Dataset
from hitl.tests.browser import ARTIFACTS, BROWSER_MARKS, WIDTH, login
from policies.models import PolicyVersion, RuleSet
from reviews.models import PROXY_BY_KIND, ReviewKind, ReviewRequest

pytestmark = BROWSER_MARKS

# Elements that scroll sideways inside the page: a table wider than its box hides columns.
# A multiple select (the admin's permission picker) scrolls its long option names by design.
_SIDEWAYS = """() => [...document.querySelectorAll('#content *')]
  .filter(el => el.tagName !== 'SELECT' && el.clientWidth > 0
    && el.scrollWidth > el.clientWidth + 1
    && ['auto', 'scroll'].includes(getComputedStyle(el).overflowX))
  .map(el => `${el.tagName}.${el.className} ${el.scrollWidth}>${el.clientWidth}`)"""


def main_pages() -> list[str]:
    """The inbox, a review of each kind, metrics, the rule set, its simulation and
    publication, the datasets and the disagreement report."""
    reviews = [
        ReviewRequest.objects.filter(tenant="", kind=kind).order_by("pk").first()
        for kind in ReviewKind
    ]
    rule_set = RuleSet.objects.get(name="default", tenant="")
    dataset = Dataset.objects.order_by("pk").first()
    return [
        reverse("admin:index"),
        reverse("admin:reviews_reviewrequest_changelist"),
        *(
            reverse(
                f"admin:reviews_{PROXY_BY_KIND[ReviewKind(r.kind)]._meta.model_name}_change",
                args=[r.pk],
            )
            for r in reviews
            if r is not None
        ),
        reverse("admin:reviews_reviewrequest_metrics"),
        reverse("admin:policies_ruleset_change", args=[rule_set.pk]),
        reverse("admin:policies_ruleset_simulate", args=[rule_set.pk]),
        reverse("admin:policies_ruleset_publish", args=[rule_set.pk]),
        reverse("admin:evaluation_dataset_changelist"),
        reverse("admin:evaluation_dataset_change", args=[dataset.pk]),
        reverse("admin:evaluation_evalcase_changelist"),
        reverse("admin:evaluation_evalcase_disagreement"),
    ]


def sideways(page) -> list[str]:
    """What scrolls sideways on the page now: the page itself, or a box inside it."""
    found = page.evaluate(_SIDEWAYS)
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > WIDTH:
        found.insert(0, f"the page is {width} px wide")
    return found


def test_no_page_of_any_demo_user_scrolls_sideways_at_1280(browser_page):
    page, base = browser_page
    pages = main_pages()
    wide, opened = [], {}
    for username in ("admin", "lead", "reviewer", "ml"):
        login(page, base, username)
        for path in pages:
            response = page.goto(base + path)
            assert response.status < 500, (username, path, response.status)
            opened[(username, path)] = response.status
            wide += [f"{username} {path}: {what}" for what in sideways(page)]
    assert wide == []
    # Each person reached the screens of their role, not only refusals.
    inbox = reverse("admin:reviews_reviewrequest_changelist")
    disagreement = reverse("admin:evaluation_evalcase_disagreement")
    assert opened[("reviewer", inbox)] == 200 and opened[("lead", inbox)] == 200
    assert opened[("ml", disagreement)] == 200 and opened[("admin", pages[-4])] == 200


def test_the_inbox_shows_every_column_at_1280(browser_page):
    page, base = browser_page
    login(page, base, "lead")
    page.goto(f"{base}/admin/reviews/reviewrequest/")
    page.wait_for_selector("#result_list")
    headers = page.inner_text("#result_list thead").upper()
    for column in ("QUEUE", "ASSIGNEE", "SLA", "EXPIRES", "SUMMARY"):
        assert column in headers
    # Every header cell is inside the visible width, not behind a scrollbar.
    right_edges = page.eval_on_selector_all(
        "#result_list thead th", "cells => cells.map(c => c.getBoundingClientRect().right)"
    )
    assert max(right_edges) <= WIDTH
    assert sideways(page) == []
    page.screenshot(path=str(ARTIFACTS / "inbox.png"), full_page=True)


def test_the_admin_simulates_and_publishes_a_rule_set_through_its_confirmation(browser_page):
    page, base = browser_page
    rule_set = RuleSet.objects.get(name="default", tenant="")
    change = f"{base}/admin/policies/ruleset/{rule_set.pk}/change/"
    login(page, base, "admin")

    # The rule set page fits the screen; a rule is edited there (cheap reads get reviewed).
    page.goto(change)
    assert sideways(page) == []
    page.screenshot(path=str(ARTIFACTS / "ruleset.png"), full_page=True)
    rule = rule_set.rules.get(name="reads_auto_execute")
    prefix = page.get_attribute(f"input[name$='-id'][value='{rule.pk}']", "name")[: -len("-id")]
    page.select_option(f"select[name='{prefix}-risk']", "medium")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    assert "Unpublished changes since v1" in page.inner_text(".form-row.field-publication_status")

    # Simulate the draft against recent proposals: nothing is written.
    page.click("text=Simulate")
    page.click("input[value='Run simulation']")
    page.wait_for_selector("#outcome-counts")
    assert "proposals simulated with draft" in page.inner_text("#content-main")
    assert PolicyVersion.objects.filter(rule_set=rule_set).count() == 1

    # Publish asks first: what changes against the active version, and the gate report.
    page.goto(change)
    page.click("text=Publish…")
    page.wait_for_selector("#hitl-confirm-publish")
    shown = page.inner_text("#content-main")
    assert "Nothing is published until you confirm below." in shown
    assert "Deciding now for the default tenant: default v1" in shown
    assert "Rules changed: 1" in shown and "reads_auto_execute" in shown
    assert "proposals replayed" in shown and "Danger: 0" in shown
    assert sideways(page) == []
    page.screenshot(path=str(ARTIFACTS / "publish-confirm.png"), full_page=True)
    assert PolicyVersion.objects.filter(rule_set=rule_set).count() == 1

    page.click("#hitl-confirm-publish")
    page.wait_for_selector(".messagelist .success")
    assert "(v2) is published and now decides for the default tenant" in page.inner_text(
        ".messagelist"
    )
    assert "is published as default v2" in page.inner_text(".form-row.field-publication_status")
    assert PolicyVersion.objects.filter(rule_set=rule_set).count() == 2

    # Asked again, the page says publishing would change nothing.
    page.click("text=Publish…")
    assert "publishing changes nothing" in page.inner_text("#content-main")
