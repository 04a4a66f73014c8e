"""The ML engineer's journey on a fresh install, in a real browser (Playwright driving
Debian's Chromium): curate a candidate into the dataset, publish it, export it."""

import json
import re
from pathlib import Path

import pytest

from evaluation.management.commands.seed_demo import DATASET
from evaluation.models import CaseStatus, Dataset, EvalCase
from hitl.tests.browser import ARTIFACTS, BROWSER_MARKS, login

pytestmark = BROWSER_MARKS


def messages(page) -> str:
    page.wait_for_selector(".messagelist")
    return page.inner_text(".messagelist")


# The demo as scripts/run.sh seeds it (the default history): what a fresh install shows.
@pytest.mark.full_demo
def test_ml_curates_a_candidate_publishes_and_exports(browser_page):
    page, base = browser_page
    login(page, base, "ml")
    dataset = Dataset.objects.get(slug=DATASET)
    first = dataset.versions.get()

    # The candidates that passed every check: each row shows its checks as green ticks.
    page.goto(f"{base}/admin/evaluation/evalcase/?status__exact=candidate&check=passed")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() >= 5
    assert "✘" not in page.inner_text("#result_list")
    row = rows.first
    case = EvalCase.objects.get(pk=row.locator("input.action-select").get_attribute("value"))
    assert case.status == CaseStatus.CANDIDATE and case.failed_checks == []
    assert case.action_name in row.inner_text()

    # Accept it, with a note, through the bulk action.
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "accept")
    page.fill("input[name=note]", "Clear correction, keeps the agent honest")
    page.screenshot(path=str(ARTIFACTS / "curate.png"), full_page=True)
    page.click("button[name=index]")
    assert "1 case(s) updated." in messages(page)
    assert "cannot be accepted" not in messages(page)
    case.refresh_from_db()
    assert (case.status, case.curated_by.username) == (CaseStatus.ACCEPTED, "ml")

    # Publish the dataset: the accepted case is a real change, so a new version is frozen.
    page.goto(f"{base}/admin/evaluation/dataset/")
    page.wait_for_selector("#result_list")
    page.locator("#result_list tbody tr", has_text=DATASET).locator("input.action-select").check()
    page.select_option("select[name=action]", "publish")
    page.click("button[name=index]")
    published = f"Published {DATASET} v2 with {first.case_count + 1} cases."
    assert published in messages(page)

    # The dataset's page lists both versions, each with its export links.
    page.click(f"#result_list a:text-is('{DATASET}')")
    page.wait_for_selector("text=JSONL")
    versions = page.inner_text(".inline-group")
    assert str(first.case_count + 1) in versions and str(first.case_count) in versions
    page.screenshot(path=str(ARTIFACTS / "dataset.png"), full_page=True)

    # Export the new version: the download holds the frozen records, the new case among them.
    v2_row = page.locator(".inline-group tr", has=page.locator("a[href*='version=2']"))
    with page.expect_download() as download_info:
        v2_row.locator("a", has_text=re.compile("^JSONL$")).click()
    download = download_info.value
    assert download.suggested_filename == f"{DATASET}-v2-generic.jsonl"
    lines = Path(download.path()).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == first.case_count + 1
    assert f"case-{case.pk}" in {record["id"] for record in records}
    mine = next(record for record in records if record["id"] == f"case-{case.pk}")
    assert mine["label"] == case.label and all(mine["checks"].values())
