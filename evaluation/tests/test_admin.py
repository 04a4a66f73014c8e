"""Curation in the admin, for ML engineers."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from evaluation.models import CaseStatus, Dataset, EvalCase, TenantEvaluationSetting
from evaluation.services import case_accept
from evaluation.tests.factories import evaluation_role_groups, make_case
from policies.seed import seed_policy
from reviews.services import tenant_create
from reviews.tests.factories import QueueFactory, UserFactory


@pytest.fixture
def demo(db, settings):
    call_command("seed_demo", "--force", "--history", "60", stdout=StringIO())


# (summary, order, why the reviewer rejected it): far enough apart that none is a
# near-duplicate of another.
REJECTIONS = [
    ("A mug arrived broken, photo attached", "17", "The photo shows a different mug"),
    ("The sofa was delivered two weeks late", "512", "Late delivery refunds shipping only"),
    ("Charged twice for a single order", "88", "The second charge was already reversed"),
]


@pytest.fixture
def curation(db):
    """An ML engineer, a reviewer, and cases captured from rejections: those that passed
    every check accepted, one decided from no screen (failing had_context) a candidate."""
    groups = evaluation_role_groups()
    ml = UserFactory(username="ml", grant=False, groups=[groups["ML engineers"]])
    UserFactory(username="reviewer", grant=False, groups=[groups["Reviewers"]])
    rita = UserFactory(username="rita")
    queue = QueueFactory(slug="operations")
    for summary, order, reason in REJECTIONS:
        arguments = {"order_id": order, "amount": "20.00", "currency": "EUR"}
        case = make_case(
            queue=queue,
            reviewer=rita,
            reason=reason,
            seconds_on_screen=60,
            summary=summary,
            arguments=arguments,
        )
        case_accept(case_id=case.pk, actor=ml, note="curated")
    make_case(
        queue=queue,
        reviewer=rita,
        reason="Nothing in the ticket supports a refund",
        summary="Customer wants money back for a gift card",
    )


@pytest.mark.django_db
def test_seed_demo_leaves_a_dataset_ready_to_export(demo, tmp_path):
    dataset = Dataset.objects.get(slug="reviewer-corrections")
    version = dataset.versions.get()
    assert version.case_count > 0
    out = tmp_path / "cases.jsonl"
    call_command("export_dataset", dataset.slug, "--out", str(out), stderr=StringIO())
    assert len(out.read_text().splitlines()) == version.case_count


@pytest.mark.django_db
def test_ml_engineer_curates_with_filters_and_bulk_actions(client, curation):
    assert client.login(username="ml", password="pw")
    url = reverse("admin:evaluation_evalcase_changelist")
    assert client.get(url).status_code == 200
    failed = client.get(url + "?check=had_context")
    assert failed.status_code == 200
    # Every case that passed was accepted; discard two, then accept them again
    # together with one that failed a check (which stays a candidate).
    passed = list(EvalCase.objects.filter(failed_checks=[]).values_list("pk", flat=True)[:2])
    failing = EvalCase.objects.exclude(failed_checks=[]).values_list("pk", flat=True)[0]
    client.post(url, {"action": "discard", "_selected_action": passed, "note": "retry"})
    assert set(EvalCase.objects.filter(pk__in=passed).values_list("status", flat=True)) == {
        CaseStatus.DISCARDED
    }
    response = client.post(
        url,
        {"action": "accept", "_selected_action": [*passed, failing], "note": "looks right"},
        follow=True,
    )
    assert "cannot be accepted" in response.text
    statuses = dict(EvalCase.objects.filter(pk__in=[*passed, failing]).values_list("pk", "status"))
    assert [statuses[pk] for pk in passed] == [CaseStatus.ACCEPTED] * 2
    assert statuses[failing] == CaseStatus.CANDIDATE
    assert EvalCase.objects.get(pk=passed[0]).curation_note == "looks right"
    case = EvalCase.objects.first()
    page = client.get(reverse("admin:evaluation_evalcase_change", args=[case.pk]))
    assert page.status_code == 200 and "had_context" in page.text
    assert client.get(reverse("admin:evaluation_evalcase_disagreement")).status_code == 200


@pytest.mark.django_db
def test_reviewers_cannot_curate(client, curation):
    assert client.login(username="reviewer", password="pw")
    assert client.get(reverse("admin:evaluation_evalcase_changelist")).status_code == 403


@pytest.fixture
def platform(db):
    """The seed policy, a platform admin, an ML engineer and a second tenant, Globex."""
    seed_policy()
    admin = UserFactory(username="admin", is_superuser=True, grant=False)
    UserFactory(username="ml", grant=False, groups=[evaluation_role_groups()["ML engineers"]])
    tenant_create(actor=admin, slug="globex", name="Globex Corp", owner=admin)


def dataset_post(**fields):
    now = timezone.localtime()
    return {
        "slug": "refunds",
        "name": "Refunds",
        "description": "",
        "action_names": '["issue_refund"]',
        "tenant": "",
        "created_at_0": now.date().isoformat(),
        "created_at_1": now.strftime("%H:%M:%S"),
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
        **fields,
    }


@pytest.mark.django_db
def test_a_dataset_saved_in_the_admin_goes_through_the_service(client, platform):
    assert client.login(username="ml", password="pw")
    url = reverse("admin:evaluation_dataset_add")
    # Valid JSON the form takes, but no list of names: the service refuses it on the form.
    refused = client.post(url, dataset_post(action_names='"issue_refund"'))
    assert refused.status_code == 200
    assert "A list of action names" in refused.context["adminform"].form.errors["action_names"][0]
    assert not Dataset.objects.filter(slug="refunds").exists()
    saved = client.post(url, dataset_post(action_names='["send_email", "issue_refund"]'))
    assert saved.status_code == 302, saved.content[:500]
    assert Dataset.objects.get(slug="refunds").action_names == ["issue_refund", "send_email"]


@pytest.mark.django_db
def test_a_tenants_evaluation_setting_saved_in_the_admin_is_in_its_history(client, platform):
    assert client.login(username="admin", password="pw")
    url = reverse("admin:evaluation_tenantevaluationsetting_add")
    refused = client.post(url, {"tenant": "nobody", "allow_evaluation": "on"})
    assert refused.status_code == 200 and "No tenant" in refused.text
    assert not TenantEvaluationSetting.objects.exists()
    assert client.post(url, {"tenant": "globex"}).status_code == 302
    setting = TenantEvaluationSetting.objects.get(tenant="globex")
    assert not setting.allow_evaluation
    row = setting.history.get()
    assert (row.history_user.username, row.history_change_reason) == (
        "admin",
        "evaluation turned off for globex",
    )
