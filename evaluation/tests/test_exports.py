"""Exports that eval tools load: each registered format, read back by the tool it is for."""

import json
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from inspect_ai.dataset import json_dataset
from inspect_ai.model import ChatMessageSystem, ChatMessageUser
from rest_framework.test import APIClient

from evaluation.models import Dataset, DatasetItem, DatasetVersion
from evaluation.selectors import EXPORT_FORMATS, export_lines, export_record, openai_record
from evaluation.services import capture_decision
from evaluation.tests.corpus import PLANTED
from reviews.tests.factories import QueueFactory, UserFactory, make_decision, make_review

pytestmark = pytest.mark.django_db

EMAIL = PLANTED["EMAIL"][0]
# What OpenAI's chat fine-tuning format allows (its data-preparation checker's rules).
OPENAI_ROLES = {"system", "user", "assistant", "tool"}
OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id"}


@pytest.fixture
def version(db, settings):
    """A frozen version of five captured cases: an approval, an edit, two rejections (one
    naming a customer's email) and an escalation."""
    settings.HITL_EVAL_APPROVAL_SAMPLE = 1.0
    rita = UserFactory(username="rita")
    queue = QueueFactory(slug="ops")
    queue.members.add(rita)

    def decide(choice, reason="", review_fields=None, **decision_fields):
        review = make_review(queue=queue, reviewers=[rita], **(review_fields or {}))
        decision = make_decision(review, reviewer=rita, choice=choice, reason=reason,
                                 **decision_fields)  # fmt: skip
        return capture_decision(decision_id=decision.pk)

    draft = {"kind": "edit", "action_name": "draft_reply", "content": "Hi"}
    cases = [
        decide("approve"),
        decide("edit", "Too short", draft, content="Hello, thanks for waiting"),
        decide("reject", "Outside the refund window"),
        decide("reject", "Wrong customer", {"summary": f"Refund {EMAIL} order 17"}),
        decide("escalate", "Chargeback open: finance decides"),
    ]
    dataset = Dataset.objects.create(slug="refunds", name="Refunds")
    frozen = DatasetVersion.objects.create(dataset=dataset, number=1, case_count=len(cases))
    DatasetItem.objects.bulk_create(
        DatasetItem(version=frozen, case=case, position=i, record=export_record(case))
        for i, case in enumerate(cases)
    )
    return frozen


def export_file(tmp_path, fmt):
    out = tmp_path / f"{fmt}.jsonl"
    call_command("export_dataset", "refunds", "--out", str(out), "--format", fmt,
                 stderr=StringIO())  # fmt: skip
    return out


def test_inspect_export_loads_with_inspect_ais_json_dataset(version, tmp_path):
    samples = list(json_dataset(str(export_file(tmp_path, "inspect"))))
    frozen = [item.record for item in DatasetItem.objects.filter(version=version)]
    assert [s.id for s in samples] == [record["id"] for record in frozen]
    for sample, record in zip(samples, frozen, strict=True):
        system, user = sample.input
        assert isinstance(system, ChatMessageSystem) and isinstance(user, ChatMessageUser)
        assert json.loads(user.content)["proposed_action"] == record["proposal"]
        assert json.loads(sample.target) == record["expected"]
        assert sample.metadata["label"] == record["label"]
        assert sample.metadata["provenance"] == record["provenance"]
    assert [s.metadata["label"] for s in samples] == [
        "approve",
        "edit",
        "reject",
        "reject",
        "escalate",
    ]


def check_openai_line(line: str) -> dict:
    """Fails as OpenAI's fine-tuning data check would: an object with only `messages`, each a
    known role with string content and no unknown keys, and at least one assistant turn."""
    example = json.loads(line)
    assert set(example) == {"messages"}
    messages = example["messages"]
    assert isinstance(messages, list) and messages
    for message in messages:
        assert message["role"] in OPENAI_ROLES
        assert set(message) <= OPENAI_MESSAGE_KEYS
        assert isinstance(message["content"], str) and message["content"]
    assert any(message["role"] == "assistant" for message in messages)
    return example


def test_openai_export_is_valid_fine_tuning_data_with_the_corrected_behaviour(version, tmp_path):
    lines = export_file(tmp_path, "openai").read_text().splitlines()
    examples = [check_openai_line(line) for line in lines]
    assert [[m["role"] for m in e["messages"]] for e in examples] == [
        ["system", "user", "assistant"]
    ] * 5
    approve, edit, reject, _, escalate = (
        json.loads(e["messages"][-1]["content"]) for e in examples
    )
    assert approve["action"]["name"] == "issue_refund"
    assert approve["action"]["args"]["amount"] == "20.00"
    # The reviewer's text, not the agent's "Hi".
    assert edit == {
        "action": {"name": "draft_reply", "args": {"order_id": "17", "amount": "20.00",
                                                   "currency": "EUR"}},
        "content": "Hello, thanks for waiting",
    }  # fmt: skip
    assert reject == {"action": None, "reason": "Outside the refund window"}
    assert escalate == {"escalate": "Chargeback open: finance decides"}


def test_guidance_becomes_the_assistant_turn():
    record = {
        "id": "case-1",
        "input": {"summary": "Refund order 17"},
        "proposal": {"action": "issue_refund", "arguments": {"amount": "20.00"}},
        "label": "guide",
        "reason": "Offer a voucher instead",
        "expected": {"decision": "guide", "guidance": "Offer a voucher instead"},
        "provenance": {},
        "checks": {},
    }
    example = check_openai_line(json.dumps(openai_record(record)))
    assert json.loads(example["messages"][-1]["content"]) == {
        "action": None,
        "guidance": "Offer a voucher instead",
    }


def test_every_format_streams_from_the_api_as_the_command_writes_it(version, tmp_path):
    ml = UserFactory(username="ml")
    ml.user_permissions.add(Permission.objects.get(codename="view_dataset"))
    client = APIClient()
    client.force_login(ml)
    for name, fmt in EXPORT_FORMATS.items():
        response = client.get(f"/api/v1/datasets/refunds/export/?records={name}")
        assert response.status_code == 200 and response.streaming
        assert response["Content-Type"] == fmt.content_type
        assert f"refunds-v1-{name}.jsonl" in response["Content-Disposition"]
        body = b"".join(response.streaming_content).decode()
        assert body == export_file(tmp_path, name).read_text()
        assert len(body.splitlines()) == 5
        # Every format is made from the redacted record: no planted address gets out.
        assert EMAIL not in body


def test_an_unknown_format_is_refused_naming_the_formats(version):
    listed = "generic, chat, inspect, openai"
    with pytest.raises(ValueError, match=f"use one of {listed}"):
        next(export_lines(version=version, fmt="xml"))
    ml = UserFactory(username="ml", is_staff=True)
    ml.user_permissions.add(Permission.objects.get(codename="view_dataset"))
    client = APIClient()
    client.force_login(ml)
    response = client.get("/api/v1/datasets/refunds/export/?records=xml")
    assert response.status_code == 400
    assert listed in json.dumps(response.json())
    with pytest.raises(CommandError, match="invalid choice: 'xml'") as refused:
        call_command("export_dataset", "refunds", "--out", "-", "--format", "xml")
    assert all(name in str(refused.value) for name in EXPORT_FORMATS)
