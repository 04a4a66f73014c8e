"""On a fresh install the ML engineer finds good candidates, curates one and publishes."""

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from evaluation.management.commands.seed_demo import DATASET
from evaluation.models import CaseStatus, Dataset, EvalCase
from evaluation.privacy import find_pii
from evaluation.services import case_accept, dataset_publish


@pytest.fixture
def fresh_install(db):
    # What scripts/run.sh runs (manage.py seed_demo is evaluation's, with the default
    # history); --force because the tests run with DEBUG off.
    call_command("seed_demo", "--force", stdout=StringIO())


def good_candidates():
    return EvalCase.objects.filter(status=CaseStatus.CANDIDATE, failed_checks=[]).order_by("pk")


def assert_candidates_pass_every_check():
    candidates = list(good_candidates())
    assert len(candidates) >= 5
    # More than one kind of action, so curating is a choice.
    assert len({case.action_name for case in candidates}) >= 3
    for case in candidates:
        assert case.checks and all(check["passed"] for check in case.checks), case.checks
        assert case.reason or case.label == "approve"
        # Redacted before it was stored: nothing personal is left to find.
        assert find_pii(json.dumps(case.input)) == [], case.input
    # The demo also shows why a case cannot join: some failed a check.
    assert EvalCase.objects.filter(status=CaseStatus.CANDIDATE).exclude(failed_checks=[])
    # Drafts greet customers by name: the captured text holds a placeholder instead.
    drafts = EvalCase.objects.filter(action_name="draft_reply")
    assert drafts and all("<PERSON_1>" in case.input["content"] for case in drafts)


@pytest.mark.django_db
def test_ml_finds_good_candidates_curates_one_and_publishes_the_next_version(fresh_install):
    # One seed for the whole path: the default history takes a while to build.
    assert_candidates_pass_every_check()
    # Seeding again (run.sh runs it on every start) leaves the dataset as it was.
    call_command("seed_demo", "--force", stdout=StringIO())
    ml = get_user_model().objects.get(username="ml")
    assert ml.has_perms(["evaluation.change_evalcase", "evaluation.change_dataset"])
    dataset = Dataset.objects.get(slug=DATASET)
    first = dataset.versions.get()
    assert first.case_count > 0

    case = good_candidates().first()
    accepted = case_accept(case_id=case.pk, actor=ml, note="clear correction")
    assert (accepted.status, accepted.curated_by) == (CaseStatus.ACCEPTED, ml)

    second = dataset_publish(dataset=dataset, actor=ml, note="one more case")
    assert (second.number, second.case_count) == (2, first.case_count + 1)
    records = [item.record for item in second.items.all()]
    assert f"case-{case.pk}" in {record["id"] for record in records}
    assert f"case-{case.pk}" not in {item.record["id"] for item in first.items.all()}
