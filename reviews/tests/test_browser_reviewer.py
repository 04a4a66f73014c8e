"""A reviewer's main journey in a real browser (Playwright driving Debian's Chromium, at a
1280 px screen): approve, correct a refund through the schema-built form, and be refused
a rejection without a reason; then the access team's permission-change screen."""

from hitl.tests.browser import ARTIFACTS, BROWSER_MARKS, login
from reviews.models import Decision, ReviewRequest, ReviewState

pytestmark = BROWSER_MARKS


def review(run_id):
    return ReviewRequest.objects.get(run__run_id=run_id)


def open_review(page, base, summary):
    page.goto(f"{base}/admin/reviews/approvalreview/")
    page.click(f"text={summary}")
    page.wait_for_selector(".hitl-question")


def fits_the_screen(page):
    """Nothing on the page scrolls sideways at this width."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_reviewer_approves_corrects_a_refund_and_cannot_reject_without_a_reason(
    browser_page,
):
    page, base = browser_page
    login(page, base, "reviewer")

    # Approve: the screen says what happens, the decision is recorded, the choices end.
    open_review(page, base, "Tell customer c-204 their parcel is delayed.")
    assert "Send email template shipping-delay to customer c-204" in page.inner_text(
        ".hitl-consequence"
    )
    assert fits_the_screen(page)
    page.screenshot(path=str(ARTIFACTS / "approval.png"), full_page=True)
    page.fill("#hitl-reason", "The carrier confirms the delay")
    page.click("button[value=approve]")
    page.wait_for_selector(".messagelist")
    assert "Recorded: approve" in page.inner_text(".messagelist")
    assert page.inner_text(".hitl-state") == "Approved"
    assert page.locator("button[value=reject]").count() == 0
    assert review("demo-email-204").state == ReviewState.APPROVED

    # Correct a refund through the form built from its schema: a number box for the amount.
    open_review(page, base, "Refund a damaged mug on order 17.")
    page.click("#edit-arguments summary")
    amount = page.locator("#id_arg-amount")
    assert amount.get_attribute("type") == "number"
    assert amount.input_value() == "20.00"
    assert page.input_value("#id_arg-currency") == "EUR"
    # Above this reviewer's limit: refused, the error beside the amount, nothing recorded.
    amount.fill("5000")
    page.fill("#hitl-reason", "Only the mug was damaged")
    page.click("button[value=edit]")
    page.wait_for_selector("#id_arg-amount_errors")
    assert "Not within your authority" in page.inner_text("#id_arg-amount_errors")
    assert page.input_value("#id_arg-amount") == "5000"  # what was typed is kept
    assert page.input_value("#hitl-reason") == "Only the mug was damaged"
    assert fits_the_screen(page)
    page.locator("#edit-arguments").screenshot(path=str(ARTIFACTS / "edit-form.png"))
    assert review("demo-refund-17").state == ReviewState.PENDING
    # Within the limit: saved, and the diff shows what changed.
    page.fill("#id_arg-amount", "15.00")
    page.click("button[value=edit]")
    page.wait_for_selector(".hitl-diff")
    assert "Recorded:" in page.inner_text(".messagelist")
    diff = page.inner_text(".hitl-diff")
    assert '-  "amount": "20.00",' in diff and '+  "amount": "15.00",' in diff
    refund = review("demo-refund-17")
    assert (refund.state, refund.final_arguments["amount"]) == (ReviewState.EDITED, "15.00")
    assert page.locator("#edit-arguments").count() == 0  # nothing more to edit

    # Reject without a reason: refused, said plainly, nothing recorded.
    open_review(page, base, "Delete a duplicate contact after a merge.")
    page.click("button[value=reject]")
    page.wait_for_selector(".messagelist .error")
    assert "reason is required" in page.inner_text(".messagelist")
    assert page.locator("button[value=reject]").count() == 1  # still decidable
    assert "Decisions" not in page.inner_text(".hitl-main")
    deletion = review("demo-delete-88")
    assert deletion.state == ReviewState.PENDING
    assert not Decision.objects.filter(review=deletion).exists()

    # The access team's screen for a permission change: whose access, now and after.
    login(page, base, "reviewer2")
    open_review(page, base, "Grant billing-admin to a new finance hire.")
    block = page.inner_text("#access-change")
    assert "u-77" in page.inner_text(".hitl-access-subject")
    assert "grant billing-admin" in block
    assert page.inner_text(".hitl-access-duration") == "no end date"
    assert "Current access" in block and "After approval" in block
    assert "Who else holds billing-admin" in block
    facts = review("demo-perm-77").policy.get("trusted_facts")
    if not facts:
        assert "not verified: no fact provider" in block
    assert fits_the_screen(page)
    page.screenshot(path=str(ARTIFACTS / "permission.png"), full_page=True)
