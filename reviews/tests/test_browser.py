"""A reviewer works the inbox in a real browser (Playwright driving Debian's Chromium)."""

from hitl.tests.browser import ARTIFACTS, BROWSER_MARKS, login
from reviews.choices import default_choices, narrow
from reviews.models import Decision, Queue, ReviewRequest, ReviewState
from reviews.selectors import resume_instruction
from reviews.tests.factories import make_review

pytestmark = BROWSER_MARKS


def review(run_id):
    return ReviewRequest.objects.get(run__run_id=run_id)


def test_a_reviewer_works_three_kinds_and_cannot_open_another_queue(browser_page):
    page, base = browser_page
    login(page, base, "reviewer")

    # The inbox, then an approval review: approve it.
    page.click("text=Approvals")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list").inner_text().count("Pending") == 3
    page.click("text=Refund a damaged mug on order 17.")
    page.wait_for_selector(".hitl-consequence")
    assert "Refund 20.00 EUR to order 17" in page.inner_text(".hitl-consequence")
    page.fill("#hitl-reason", "Photo shows the damage")
    page.click("button[value=approve]")
    page.wait_for_selector(".messagelist")
    assert "Recorded: approve" in page.inner_text(".messagelist")
    assert review("demo-refund-17").state == ReviewState.APPROVED
    assert page.locator("button[value=reject]").count() == 0  # nothing more to decide

    # An edit review: change the text; the diff shows.
    page.goto(f"{base}/admin/reviews/editreview/")
    page.click("text=Reply to a customer asking about a late refund.")
    page.wait_for_selector("#hitl-content")
    text = page.input_value("#hitl-content")
    page.fill("#hitl-content", text.replace("3-5 business days", "2 business days"))
    page.click("button[value=edit]")
    page.wait_for_selector(".hitl-diff")
    diff = page.inner_text(".hitl-diff")
    assert "+" in diff and "2 business days" in diff
    page.screenshot(path=str(ARTIFACTS / "edit.png"), full_page=True)
    assert review("demo-draft-990").state == ReviewState.EDITED

    # Escalate an approval review: a reason is required, and what was typed is kept.
    page.goto(f"{base}/admin/reviews/approvalreview/")
    page.click("text=Tell customer c-204 their parcel is delayed.")
    page.click("button[value=escalate]")
    page.wait_for_selector(".messagelist .error")
    assert "reason is required" in page.inner_text(".messagelist")
    page.fill("#hitl-reason", "Customer is a key account, lead should decide")
    page.click("button[value=escalate]")
    page.wait_for_selector(".hitl-state-escalated")
    assert review("demo-email-204").state == ReviewState.ESCALATED

    # The escalation screen asks its own question.
    page.goto(f"{base}/admin/reviews/escalationreview/")
    page.click("text=Customer demands a full refund for a sofa delivered late.")
    page.wait_for_selector("text=Why the agent is unsure")
    assert page.locator("button[value=take_over]").count() == 1
    assert page.locator("button[value=guide]").count() == 1
    page.screenshot(path=str(ARTIFACTS / "escalation.png"), full_page=True)

    # A call the agent marked answerable: the reviewer answers in the tool's place, in a
    # box of its own; an empty answer is refused.
    asked = make_review(
        queue=Queue.objects.get(slug="operations", tenant=""),
        run_id="browser-answerable-5",
        summary="Refund order 5 if it never shipped.",
        choices=narrow(default_choices("approval"), kind="approval", answerable=True),
    )
    page.goto(f"{base}/admin/reviews/approvalreview/{asked.pk}/change/")
    assert "the tool's result" in page.inner_text("#respond")
    page.click("button[value=respond]")
    page.wait_for_selector(".messagelist .error")
    assert "reason is required to respond" in page.inner_text(".messagelist")
    answer = "Order 5 shipped on Monday; no refund is due."
    page.fill("#hitl-response", answer)
    page.screenshot(path=str(ARTIFACTS / "respond.png"), full_page=True)
    page.click("button[value=respond]")
    page.wait_for_selector(".hitl-state-edited")
    assert "Recorded: respond" in page.inner_text(".messagelist")
    asked.refresh_from_db()
    assert (asked.state, asked.final_content) == (ReviewState.EDITED, answer)
    assert resume_instruction(asked) == {"action": "respond", "message": answer}

    # Another queue's review is refused, by URL too.
    other = review("demo-perm-77")
    page.goto(f"{base}/admin/reviews/approvalreview/{other.pk}/change/")
    assert "Grant billing-admin" not in page.content()
    assert "doesn" in page.inner_text(".messagelist")  # the admin's "doesn't exist"
    assert not Decision.objects.filter(review=other).exists()
