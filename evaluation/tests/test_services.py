"""Capture, quality checks, privacy in storage, curation, datasets and exports."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from evaluation.models import CaseStatus, Dataset, DatasetItem, EvalCase, TenantEvaluationSetting
from evaluation.selectors import disagreement, export_lines
from evaluation.services import (
    EvaluationError,
    case_accept,
    case_discard,
    dataset_create,
    dataset_publish,
    dataset_save,
    tenant_evaluation_setting_save,
)
from evaluation.tasks import capture
from evaluation.tests.corpus import PLANTED
from reviews.services import (
    review_approve,
    review_edit,
    review_reject,
    review_request_more_evidence,
)
from reviews.tests.factories import QueueFactory, UserFactory, make_review

pytestmark = pytest.mark.django_db

EMAIL, PHONE, CARD = PLANTED["EMAIL"][0], PLANTED["PHONE"][0], PLANTED["CARD"][0]
IBAN, IP, GOV = PLANTED["IBAN"][0], PLANTED["IP"][0], PLANTED["GOV_ID"][0]
ALL_PLANTED = [v for values in PLANTED.values() for v in values]


@pytest.fixture(autouse=True)
def capture_at_once(settings):
    settings.HITL_EVAL_CAPTURE_SYNC = True
    settings.HITL_EVAL_APPROVAL_SAMPLE = 0.0


@pytest.fixture
def rita(db):
    return UserFactory(username="rita")


@pytest.fixture
def queue(rita):
    q = QueueFactory(slug="ops")
    q.members.add(rita)
    return q


@pytest.fixture(autouse=True)
def _reviewer_clock(clock):
    global CLOCK
    CLOCK = clock


def opened(seconds=60):
    """The reviewer opens the screen now and decides `seconds` later."""
    at = timezone.now()
    CLOCK.shift(timedelta(seconds=seconds))
    return at


def decided(fn, django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        return fn(**kwargs)


def pii_review(queue, **overrides):
    fields = {
        "summary": f"Customer {EMAIL} asks for a refund, phone {PHONE}",
        "arguments": {"order_id": "17", "amount": "20.00", "currency": "EUR", "iban": IBAN},
        "evidence": [
            {"id": "t-1", "title": "Ticket", "excerpt": f"Paid with card {CARD} from {IP}"}
        ],
        "uncertainty": f"ID document {GOV} looks edited",
    }
    fields.update(overrides)
    return make_review(queue=queue, **fields)


def test_a_rejection_becomes_a_redacted_candidate(queue, rita, django_capture_on_commit_callbacks):
    review = pii_review(queue)
    decided(
        review_reject,
        django_capture_on_commit_callbacks,
        review_id=review.review_id,
        reviewer=rita,
        reason=f"Card {CARD} belongs to someone else",
        opened_at=opened(),
    )
    case = EvalCase.objects.get()
    assert (case.status, case.label, case.action_name) == ("candidate", "reject", "issue_refund")
    assert case.failed_checks == []
    assert case.reason == "Card <CARD_1> belongs to someone else"
    assert case.input["summary"] == "Customer <EMAIL_1> asks for a refund, phone <PHONE_1>"
    assert case.input["arguments"]["iban"] == "<IBAN_1>"
    assert case.pii_found == {"EMAIL": 1, "PHONE": 1, "CARD": 1, "IBAN": 1, "IP": 1, "GOV_ID": 1}
    provenance = case.provenance
    assert (provenance["review_id"], provenance["reviewer"]) == (review.review_id, "rita")
    assert provenance["time_spent_seconds"] >= 60
    assert set(provenance["versions"]) == {"agent", "model", "prompt", "policy"}


def test_capture_is_idempotent_and_the_task_reports(queue, rita):
    review = pii_review(queue)
    decision = review_reject(review_id=review.review_id, reviewer=rita, reason="Wrong order id")
    assert capture(decision.pk).startswith("case ")
    assert capture(decision.pk).startswith("case ")
    assert EvalCase.objects.count() == 1


def test_what_is_captured(queue, rita, settings, django_capture_on_commit_callbacks):
    first = make_review(queue=queue, required_approvals=2)
    reviewer2 = UserFactory(username="remy")
    queue.members.add(reviewer2)
    decided(review_approve, django_capture_on_commit_callbacks, review_id=first.review_id,
            reviewer=rita)  # fmt: skip
    asked = make_review(queue=queue)
    decided(review_request_more_evidence, django_capture_on_commit_callbacks,
            review_id=asked.review_id, reviewer=rita, reason="Which order?")  # fmt: skip
    assert EvalCase.objects.count() == 0  # partial approvals and questions are not labels
    settings.HITL_EVAL_APPROVAL_SAMPLE = 1.0
    decided(review_approve, django_capture_on_commit_callbacks, review_id=first.review_id,
            reviewer=reviewer2)  # fmt: skip
    assert list(EvalCase.objects.values_list("label", flat=True)) == ["approve"]


def test_a_tenant_can_opt_out(queue, rita, django_capture_on_commit_callbacks):
    TenantEvaluationSetting.objects.create(tenant="", allow_evaluation=False)
    review = pii_review(queue)
    decided(review_reject, django_capture_on_commit_callbacks, review_id=review.review_id,
            reviewer=rita, reason="Wrong order id")  # fmt: skip
    assert not EvalCase.objects.exists()


@pytest.mark.parametrize(
    ("reason", "seconds", "failed"),
    [
        ("Customer already refunded last week", 60, []),
        ("ok", 60, ["real_reason"]),
        ("Customer already refunded last week", 3, ["had_context"]),
        ("Customer already refunded last week", None, ["had_context"]),
    ],
)
def test_context_and_reason_checks(queue, rita, reason, seconds, failed,
                                   django_capture_on_commit_callbacks):  # fmt: skip
    review = make_review(queue=queue)
    decided(review_reject, django_capture_on_commit_callbacks, review_id=review.review_id,
            reviewer=rita, reason=reason,
            opened_at=opened(seconds) if seconds is not None else None)  # fmt: skip
    assert EvalCase.objects.get().failed_checks == failed


def test_trivial_edits_fail(queue, rita, django_capture_on_commit_callbacks):
    trivial = make_review(queue=queue, kind="edit", action_name="draft_reply",
                          content="Hello Sam, your refund is on its way")  # fmt: skip
    decided(review_edit, django_capture_on_commit_callbacks, review_id=trivial.review_id,
            reviewer=rita, content="Hello Sam,  your refund is on its way!",
            reason="Punctuation fix", opened_at=opened())  # fmt: skip
    real = make_review(queue=queue, kind="edit", action_name="draft_reply",
                       content="Your refund was denied")  # fmt: skip
    decided(review_edit, django_capture_on_commit_callbacks, review_id=real.review_id,
            reviewer=rita, content="Your refund was approved", reason="Wrong outcome stated",
            opened_at=opened())  # fmt: skip
    checks = dict(EvalCase.objects.values_list("review_id", "failed_checks"))
    assert checks == {trivial.review_id: ["non_trivial_edit"], real.review_id: []}


def test_a_later_opposite_decision_on_the_run_contradicts(
    queue, rita, settings, django_capture_on_commit_callbacks
):
    first = make_review(queue=queue, run_id="run-x", summary="Refund order 17, photo attached")
    decided(review_reject, django_capture_on_commit_callbacks, review_id=first.review_id,
            reviewer=rita, reason="No proof of damage", opened_at=opened())  # fmt: skip
    assert EvalCase.objects.get().failed_checks == []
    second = make_review(queue=queue, run_id="run-x", summary="Same refund, better photo")
    decided(review_approve, django_capture_on_commit_callbacks, review_id=second.review_id,
            reviewer=rita, opened_at=opened())  # fmt: skip
    case = EvalCase.objects.get()
    assert case.failed_checks == ["not_contradicted"]
    assert "approve" in next(c for c in case.checks if c["name"] == "not_contradicted")["reason"]


def test_near_duplicates_fail(queue, rita, django_capture_on_commit_callbacks):
    for _ in range(2):
        review = make_review(queue=queue, summary="Refund order 17 for a broken mug")
        decided(review_reject, django_capture_on_commit_callbacks, review_id=review.review_id,
                reviewer=rita, reason="Outside the refund window", opened_at=opened())  # fmt: skip
    assert list(EvalCase.objects.order_by("id").values_list("failed_checks", flat=True)) == [
        [],
        ["not_duplicate"],
    ]


def curated_dataset(queue, rita, ml, capture_ctx):
    good = pii_review(queue)
    decided(review_reject, capture_ctx, review_id=good.review_id, reviewer=rita,
            reason=f"Refund already paid to {IBAN}", opened_at=opened())  # fmt: skip
    bad = make_review(queue=queue, summary="Something else entirely")
    decided(review_reject, capture_ctx, review_id=bad.review_id, reviewer=rita, reason="no",
            opened_at=opened())  # fmt: skip
    good_case = EvalCase.objects.get(review_id=good.review_id)
    bad_case = EvalCase.objects.get(review_id=bad.review_id)
    with pytest.raises(EvaluationError, match="real_reason"):
        case_accept(case_id=bad_case.pk, actor=ml)
    case_discard(case_id=bad_case.pk, actor=ml, note="boilerplate")
    case_accept(case_id=good_case.pk, actor=ml, note="clear label")
    dataset = dataset_create(slug="refunds", name="Refunds")
    return dataset, dataset_publish(dataset=dataset, actor=ml), good_case


def test_curation_freezes_versions_and_exports_equal_them(
    queue, rita, django_capture_on_commit_callbacks
):
    ml = UserFactory(username="ml")
    dataset, v1, good = curated_dataset(queue, rita, ml, django_capture_on_commit_callbacks)
    assert (v1.number, v1.case_count) == (1, 1)
    assert EvalCase.objects.get(pk=good.pk).status == CaseStatus.ACCEPTED
    lines = list(export_lines(version=v1))
    frozen = [item.record for item in DatasetItem.objects.filter(version=v1)]
    assert [json.loads(line) for line in lines] == frozen
    chat = json.loads(next(export_lines(version=v1, fmt="chat")))
    assert [m["role"] for m in chat["messages"]] == ["system", "user"]
    assert json.loads(chat["expected"]["content"])["decision"] == "reject"
    # A later accepted case goes into v2, never into v1.
    later = make_review(queue=queue, summary="Another refund, other customer")
    decided(review_reject, django_capture_on_commit_callbacks, review_id=later.review_id,
            reviewer=rita, reason="Customer has a chargeback open", opened_at=opened())  # fmt: skip
    case_accept(case_id=EvalCase.objects.get(review_id=later.review_id).pk, actor=ml)
    v2 = dataset_publish(dataset=dataset, actor=ml)
    assert (v2.number, v2.case_count) == (2, 2)
    assert list(export_lines(version=v1)) == lines
    with pytest.raises(ValueError, match="frozen"):
        v1.save()


def test_no_planted_value_reaches_evaluation_tables_or_exports(
    queue, rita, django_capture_on_commit_callbacks, tmp_path
):
    ml = UserFactory(username="ml")
    _, version, _ = curated_dataset(queue, rita, ml, django_capture_on_commit_callbacks)
    stored = json.dumps(
        list(EvalCase.objects.values()) + list(DatasetItem.objects.values("record")),
        default=str,
    )
    history = json.dumps(list(EvalCase.history.values()), default=str)
    exports = "".join(export_lines(version=version)) + "".join(
        export_lines(version=version, fmt="chat")
    )
    out = tmp_path / "cases.jsonl"
    call_command("export_dataset", "refunds", "--out", str(out), stderr=StringIO())
    exports += out.read_text()
    for value in (EMAIL, PHONE, CARD, IBAN, IP, GOV):
        for blob in (stored, history, exports):
            assert value not in blob


def test_export_command_and_api(queue, rita, django_capture_on_commit_callbacks, tmp_path):
    ml = UserFactory(username="ml")
    ml.user_permissions.add(Permission.objects.get(codename="view_dataset"))
    curated_dataset(queue, rita, ml, django_capture_on_commit_callbacks)
    out = tmp_path / "chat.jsonl"
    err = StringIO()
    call_command("export_dataset", "refunds", "--version", "1", "--out", str(out),
                 "--format", "chat", stderr=err)  # fmt: skip
    assert "Wrote 1 cases of refunds v1 (chat)" in err.getvalue()

    client = APIClient()
    client.force_login(ml)
    response = client.get("/api/v1/datasets/refunds/export/?records=chat")
    assert response.status_code == 200 and response.streaming
    assert b"".join(response.streaming_content).decode() == out.read_text()
    assert client.get("/api/v1/datasets/refunds/export/?version=7").status_code == 404
    assert client.get("/api/v1/datasets/nope/export/").status_code == 404
    assert client.get("/api/v1/datasets/refunds/export/?records=xml").status_code == 400
    client.force_login(rita)  # a reviewer, not an ML engineer
    assert client.get("/api/v1/datasets/refunds/export/").status_code == 403

    with pytest.raises(CommandError, match="no version 9"):
        call_command("export_dataset", "refunds", "--version", "9", "--out", str(out))
    with pytest.raises(CommandError, match="Cannot write"):
        call_command("export_dataset", "refunds", "--out", str(tmp_path / "no" / "x.jsonl"))


def test_disagreement_per_action_rule_and_version(queue, rita, django_capture_on_commit_callbacks):
    for reason in ("Wrong amount on it", "Outside the window"):
        review = make_review(queue=queue, summary=f"refund {reason}")
        decided(review_reject, django_capture_on_commit_callbacks, review_id=review.review_id,
                reviewer=rita, reason=reason, opened_at=opened())  # fmt: skip
    draft = make_review(queue=queue, kind="edit", action_name="draft_reply", content="Hi")
    decided(review_edit, django_capture_on_commit_callbacks, review_id=draft.review_id,
            reviewer=rita, content="Hello Sam, thanks", reason="Too short")  # fmt: skip
    tables = disagreement()
    by_action = {row["action"]: row for row in tables["action"]}
    assert by_action["issue_refund"]["rejection_rate"] == 1.0
    assert by_action["draft_reply"]["edit_rate"] == 1.0
    assert {row["agent_version"] for row in tables["agent_version"]} == {"-"}


@pytest.fixture
def acme_queue(rita):
    from policies.models import Tenant

    Tenant.objects.create(slug="acme", name="Acme")
    q = QueueFactory(slug="ops", tenant="acme")
    q.members.add(rita)
    return q


def reject_in(queue, rita, callbacks, summary="Refund order 17 twice"):
    review = make_review(queue=queue, tenant=queue.tenant, summary=summary)
    decided(review_reject, callbacks, review_id=review.review_id, reviewer=rita,
            reason="The order was already refunded", opened_at=opened())  # fmt: skip
    return EvalCase.objects.filter(review_id=review.review_id).first()


def test_tenants_never_share_duplicates_or_datasets(
    queue, acme_queue, rita, django_capture_on_commit_callbacks
):
    ml = UserFactory(username="ml")
    ours = reject_in(queue, rita, django_capture_on_commit_callbacks)
    theirs = reject_in(acme_queue, rita, django_capture_on_commit_callbacks)
    # The same mistake in two tenants: neither case is a duplicate of the other's.
    assert (ours.tenant, theirs.tenant) == ("", "acme")
    assert ours.passed and theirs.passed, (ours.failed_checks, theirs.failed_checks)
    for case in (ours, theirs):
        case_accept(case_id=case.pk, actor=ml)
    acme = dataset_publish(dataset=dataset_create(slug="acme", name="A", tenant="acme"), actor=ml)
    assert [i.case_id for i in DatasetItem.objects.filter(version=acme)] == [theirs.pk]
    mixed = dataset_create(slug="all", name="All", all_tenants=True)
    assert dataset_publish(dataset=mixed, actor=ml).case_count == 2


def test_a_tenant_turning_evaluation_off_is_obeyed_from_the_next_decision(
    acme_queue, rita, django_capture_on_commit_callbacks
):
    first = reject_in(acme_queue, rita, django_capture_on_commit_callbacks, summary="First one")
    assert first is not None
    TenantEvaluationSetting.objects.create(tenant="acme", allow_evaluation=False)
    assert reject_in(acme_queue, rita, django_capture_on_commit_callbacks, "Second") is None


def test_capture_and_curation_history_name_who_and_why(
    queue, rita, django_capture_on_commit_callbacks
):
    case = reject_in(queue, rita, django_capture_on_commit_callbacks)
    captured = case.history.get()
    assert (captured.history_actor, captured.history_user) == ("system:evaluation", None)
    assert captured.history_change_reason == "captured"
    ml = UserFactory(username="ml")
    case_discard(case_id=case.pk, actor=ml, note="not useful")
    discarded = case.history.latest()
    assert (discarded.history_actor, discarded.history_user) == ("user:ml", ml)
    assert discarded.history_change_reason == "discarded: not useful"


def test_a_curator_saves_a_dataset_and_only_an_admin_mixes_tenants():
    ml = UserFactory(username="ml")
    dataset = dataset_save(
        actor=ml, dataset=Dataset(slug="refunds", name="Refunds", action_names=["b", "a", "b"])
    )
    assert Dataset.objects.get(pk=dataset.pk).action_names == ["a", "b"]
    dataset.all_tenants = True
    with pytest.raises(EvaluationError, match="platform administrator"):
        dataset_save(actor=ml, dataset=dataset)
    assert not Dataset.objects.get(pk=dataset.pk).all_tenants
    admin = UserFactory(username="ada", is_superuser=True)
    dataset_save(actor=admin, dataset=dataset)
    assert Dataset.objects.get(pk=dataset.pk).all_tenants


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"action_names": "issue_refund"}, "action_names"), ({"slug": "Not a slug"}, "slug")],
)
def test_a_bad_dataset_is_refused_and_not_saved(fields, field):
    ml = UserFactory(username="ml")
    dataset = Dataset(**{"slug": "refunds", "name": "Refunds", **fields})
    with pytest.raises(ValidationError) as refused:
        dataset_save(actor=ml, dataset=dataset)
    assert field in refused.value.message_dict
    assert not Dataset.objects.exists()


def test_a_tenants_evaluation_setting_is_saved_with_who_and_why(acme_queue):
    admin = UserFactory(username="ada", is_superuser=True)
    setting = tenant_evaluation_setting_save(
        actor=admin, setting=TenantEvaluationSetting(tenant="acme", allow_evaluation=False)
    )
    row = setting.history.get()
    assert (row.history_user, row.history_actor) == (admin, "user:ada")
    assert row.history_change_reason == "evaluation turned off for acme"
    setting.allow_evaluation = True
    tenant_evaluation_setting_save(actor=admin, setting=setting)
    assert setting.history.latest().history_change_reason == "evaluation allowed for acme"


@pytest.mark.parametrize("tenant", ["nobody", "acme"])
def test_a_bad_evaluation_setting_is_refused_and_not_saved(acme_queue, tenant):
    admin = UserFactory(username="ada", is_superuser=True)
    TenantEvaluationSetting.objects.create(tenant="acme", allow_evaluation=True)
    with pytest.raises(ValidationError) as refused:
        tenant_evaluation_setting_save(
            actor=admin, setting=TenantEvaluationSetting(tenant=tenant, allow_evaluation=False)
        )
    assert "tenant" in refused.value.message_dict
    assert list(TenantEvaluationSetting.objects.values_list("tenant", "allow_evaluation")) == [
        ("acme", True)
    ]
    assert TenantEvaluationSetting.history.count() == 1  # the setup's


def test_a_dataset_change_is_in_its_history_with_who_and_why():
    ml = UserFactory(username="ml")
    dataset = dataset_save(actor=ml, dataset=Dataset(slug="refunds", name="Refunds"))
    dataset.name = "Refunds (EU)"
    dataset_save(actor=ml, dataset=dataset)
    rows = list(dataset.history.order_by("history_date", "history_id"))
    assert [(r.history_user, r.history_change_reason, r.name) for r in rows] == [
        (ml, "created", "Refunds"),
        (ml, "settings changed", "Refunds (EU)"),
    ]
