"""Regression runs: the client's runner scores the platform's own export, and the platform
stores runs and compares two of them."""

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from evaluation.models import EvalCase, RegressionRun
from evaluation.regressions import compare_runs
from evaluation.selectors import export_lines
from evaluation.services import case_accept, dataset_create, dataset_publish
from hitl_client import regress
from hitl_client.tests import regress_agents
from reviews.tests.factories import QueueFactory, UserFactory, make_decision, make_review

pytestmark = pytest.mark.django_db

CORRECTED = "We refunded 15.00 EUR for order 18; shipping is not refundable."
FIXTURE = Path(regress_agents.__file__).parent / "fixtures" / "refunds.jsonl"


@pytest.fixture(autouse=True)
def capture_everything(settings):
    settings.HITL_EVAL_CAPTURE_SYNC = True
    settings.HITL_EVAL_APPROVAL_SAMPLE = 1.0


def decide(capture, queue, rita, choice, summary, kind="approval", proposed="", **decision):
    """A review the reviewer looked at for a minute, then decided; its case captured."""
    clock, capture = capture
    opened = timezone.now()
    review = make_review(
        queue=queue, kind=kind, summary=summary, content=proposed, reviewers=[rita]
    )
    clock.shift(timedelta(seconds=60))
    with capture(execute=True):
        make_decision(review, reviewer=rita, choice=choice, opened_at=opened, **decision)
    return EvalCase.objects.get(review_id=review.review_id)


def published_export(capture, tmp_path):
    """Each kind of verdict, captured, curated, published and exported by the platform."""
    rita = UserFactory(username="rita")
    queue = QueueFactory(slug="ops")
    cases = [
        decide(capture, queue, rita, "approve", "Refund order 17: parcel lost"),
        decide(capture, queue, rita, "edit", "Refund order 18 including shipping", kind="edit",
               proposed="We refunded 20.00 EUR for order 18.", reason="Shipping is not refundable",
               content=CORRECTED),
        decide(capture, queue, rita, "reject", "Refund order 19, chargeback open",
               reason="The customer has a chargeback open"),
        decide(capture, queue, rita, "escalate", "Refund order 20, customer threatens legal",
               reason="Legal must answer this one"),
        decide(capture, queue, rita, "take_over", "Refund order 22 to a different account",
               kind="escalation", reason="Looks like fraud, I take it"),
    ]  # fmt: skip
    ml = UserFactory(username="ml")
    for case in cases:
        case_accept(case_id=case.pk, actor=ml)
    version = dataset_publish(dataset=dataset_create(slug="refunds", name="Refunds"), actor=ml)
    out = tmp_path / "refunds.jsonl"
    out.write_text("".join(export_lines(version=version)))
    return version, out


def shape(value):
    """The keys of a record, nested, without the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if key != "checks"}
    return None


def test_the_runner_scores_the_platforms_own_export(
    clock, django_capture_on_commit_callbacks, tmp_path
):
    _, out = published_export((clock, django_capture_on_commit_callbacks), tmp_path)
    records = regress.load_dataset(out)
    assert [r["label"] for r in records] == ["approve", "edit", "reject", "escalate", "take_over"]
    results = regress.run(records, regress_agents.repeat)
    assert [r.passed for r in results] == [True, False, False, False, False]
    assert results[1].reason.startswith("does not match the correction: content: 0.")

    def wanted(case_input):
        summary = case_input["summary"]
        if "chargeback" in summary:
            return None
        if "legal" in summary or "different account" in summary:
            return {"escalate": "a person decides"}
        content = CORRECTED if "shipping" in summary else case_input["content"]
        return {
            "action": {"name": "issue_refund", "args": case_input["arguments"]},
            "content": content,
        }

    assert all(r.passed for r in regress.run(records, wanted))


def test_the_client_fixture_has_the_shape_of_a_real_export(
    clock, django_capture_on_commit_callbacks, tmp_path
):
    _, out = published_export((clock, django_capture_on_commit_callbacks), tmp_path)
    real = [json.loads(line) for line in out.read_text().splitlines()]
    fixture = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    by_label = {r["label"]: shape(r) for r in real}
    for record in fixture:
        if record["label"] in by_label:
            assert shape(record) == by_label[record["label"]], record["id"]


AGENTS = "hitl_client.tests.regress_agents"


def run_regression(agent, *extra):
    out = StringIO()
    try:
        call_command(
            "run_regression", "refunds", "--agent", f"{AGENTS}:{agent}", *extra, stdout=out
        )
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), ""


@pytest.fixture
def three_runs(clock, django_capture_on_commit_callbacks, tmp_path):
    published_export((clock, django_capture_on_commit_callbacks), tmp_path)
    outputs = [
        run_regression("repeat", "--agent-version", "1.0"),
        run_regression("careful", "--version", "1", "--agent-version", "1.1"),
        run_regression("broken"),
    ]
    return outputs, list(RegressionRun.objects.order_by("id"))


def test_run_regression_stores_each_run_and_fails_on_failures(three_runs):
    outputs, (repeat, careful, broken) = three_runs
    printed, error = outputs[0]
    assert "FAIL case-" in printed
    assert f"Run {repeat.pk} of refunds v1: 1 passed, 4 failed." in printed
    assert error == "4 of 5 cases failed."
    assert (repeat.agent, repeat.agent_version) == (f"{AGENTS}:repeat", "1.0")
    assert (repeat.passed, repeat.failed, repeat.version.number) == (1, 4, 1)
    assert repeat.finished_at >= repeat.started_at
    assert [r.label for r in repeat.results.all()] == [
        "approve", "edit", "reject", "escalate", "take_over"
    ]  # fmt: skip
    assert (careful.passed, careful.failed) == (4, 1)
    assert broken.results.filter(reason__contains="RuntimeError").count() == 5
    with pytest.raises(CommandError, match="no version 4"):
        call_command("run_regression", "refunds", "--version", "4", "--agent", f"{AGENTS}:repeat")
    with pytest.raises(CommandError, match="cannot import"):
        call_command("run_regression", "refunds", "--agent", "nowhere:agent")


def ids(rows):
    return [row["case_id"] for row in rows]


def test_two_runs_compare_fixed_broken_and_still_failing(three_runs):
    _, (repeat, careful, broken) = three_runs
    case = {r.label: r.case_id for r in repeat.results.all()}
    better = compare_runs(repeat, careful)
    assert ids(better["fixed"]) == [case["reject"], case["escalate"], case["take_over"]]
    assert ids(better["still_failing"]) == [case["edit"]]
    assert better["broken"] == [] and better["new"] == []
    worse = compare_runs(careful, broken)
    assert ids(worse["broken"]) == [
        case["approve"], case["reject"], case["escalate"], case["take_over"]
    ]  # fmt: skip
    assert worse["fixed"] == []


def test_the_admin_shows_runs_and_compares_two(three_runs, admin_client):
    _, (repeat, careful, _) = three_runs
    changelist = reverse("admin:evaluation_regressionrun_changelist")
    assert admin_client.get(changelist).status_code == 200
    page = admin_client.get(reverse("admin:evaluation_regressionrun_change", args=[repeat.pk]))
    assert page.status_code == 200 and "proposes the rejected issue_refund" in page.text
    action = {"action": "compare", "_selected_action": [repeat.pk, careful.pk]}
    compared = admin_client.post(changelist, action)
    assert compared.status_code == 200
    assert "Fixed: 3" in compared.text and "Still failing: 1" in compared.text
    one = admin_client.post(changelist, {**action, "_selected_action": [repeat.pk]}, follow=True)
    assert "Select exactly two runs to compare." in one.text
