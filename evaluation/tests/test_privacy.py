"""PII detection on the synthetic corpora, offline, with recall and precision reported,
and no planted name or address in any export."""

import json
import socket
from collections import defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone

from evaluation.models import EvalCase
from evaluation.privacy import Redactor, find_pii
from evaluation.selectors import EXPORT_FORMATS, export_lines
from evaluation.services import case_accept, dataset_create, dataset_publish
from evaluation.tests.corpus import (
    ADDRESS_TEMPLATES,
    ADDRESSES,
    LOOKALIKES,
    NAME_TEMPLATES,
    NAMES,
    NOT_PII,
    PLANTED,
    people_and_places,
    sentences,
)
from reviews.services import review_reject
from reviews.tests.factories import QueueFactory, UserFactory, make_review


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the privacy check tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_recall_and_precision_on_the_corpus(no_network, capsys):
    planted_total = found_planted = false_positives = 0
    missed = []
    for text, planted in sentences():
        found = find_pii(text)
        values = [value for _, value in found]
        for value in planted:
            planted_total += 1
            if any(value in v or v in value for v in values):
                found_planted += 1
            else:
                missed.append(value)
        false_positives += sum(1 for v in values if not any(v in p or p in v for p in planted))
    recall = found_planted / planted_total
    precision = found_planted / (found_planted + false_positives)
    with capsys.disabled():
        print(f"\nPII check: recall {recall:.2f}, precision {precision:.2f}, missed {missed}")
    assert recall >= 0.9, missed
    assert precision >= 0.8


@pytest.mark.parametrize(("kind", "values"), list(PLANTED.items()))
def test_each_kind_is_replaced_by_a_typed_placeholder(no_network, kind, values):
    redactor = Redactor()
    text = " and ".join(values)
    redacted = redactor.text(text)
    for value in values:
        assert value not in redacted
    assert f"<{kind}_1>" in redacted


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_are_left_alone(no_network, text):
    assert Redactor().text(text) == text


def test_the_same_value_gets_the_same_placeholder_and_json_is_walked(no_network):
    redactor = Redactor()
    value = redactor.value(
        {"to": "anna.smith@example.org", "cc": ["anna.smith@example.org", "ok"], "n": 3}
    )
    assert value == {"to": "<EMAIL_1>", "cc": ["<EMAIL_1>", "ok"], "n": 3}
    assert redactor.found == {"EMAIL": 1}


def _matches(value, planted):
    return any(value in p or p in value for p in planted)


def test_people_and_places_recall_and_precision(no_network, capsys):
    # Only the new kinds count here: a phone or a card inside a ticket is the other test's.
    wanted = {"PERSON", "ADDRESS"}
    totals = defaultdict(lambda: {"planted": 0, "found": 0, "false": 0})
    missed, wrong = [], []
    for text, planted, country in people_and_places():
        values = [value for kind, value in find_pii(text) if kind in wanted]
        row = totals[country or "lookalikes"]
        for value in planted:
            row["planted"] += 1
            if any(_matches(v, [value]) for v in values):
                row["found"] += 1
            else:
                missed.append(value)
        false = [v for v in values if not _matches(v, planted)]
        row["false"] += len(false)
        wrong += false
    planted = sum(r["planted"] for r in totals.values())
    found = sum(r["found"] for r in totals.values())
    false = sum(r["false"] for r in totals.values())
    recall, precision = found / planted, found / (found + false)
    with capsys.disabled():
        print(
            f"\nPeople and places: recall {recall:.3f} ({found}/{planted}), precision "
            f"{precision:.3f} ({false} false), {len(NOT_PII)} lookalikes, missed {missed}, "
            f"wrongly flagged {wrong}"
        )
        for country, row in totals.items():
            share = row["found"] / row["planted"] if row["planted"] else 1.0
            print(f"  {country:10} recall {share:.2f} ({row['found']}/{row['planted']}), "
                  f"false {row['false']}")  # fmt: skip
    assert recall >= 0.95, missed
    assert precision >= 0.90, wrong
    assert len({c for _, planted, c in people_and_places() if planted}) >= 5


def test_names_and_addresses_get_numbered_placeholders(no_network):
    redactor = Redactor()
    first = redactor.text("Hi Anna Schmidt, we ship to Hauptstraße 5, 10115 Berlin today.")
    second = redactor.text("Anna Schmidt and Hiroshi Tanaka share Hauptstraße 5, 10115 Berlin.")
    assert first == "Hi <PERSON_1>, we ship to <ADDRESS_1> today."
    assert second == "<PERSON_1> and <PERSON_2> share <ADDRESS_1>."
    assert redactor.found == {"PERSON": 2, "ADDRESS": 1}


@pytest.mark.parametrize("text", NOT_PII)
def test_people_and_places_lookalikes_are_left_alone(no_network, text):
    assert Redactor().text(text) == text


def planted_ticket():
    """Every planted name and address, spread over the fields a case copies."""
    names = [name for values in NAMES.values() for name in values]
    addresses = [a for values in ADDRESSES.values() for a in values]
    said = [NAME_TEMPLATES[i % 3].format(name) for i, name in enumerate(names)]
    sent = [ADDRESS_TEMPLATES[i % 4].format(a) for i, a in enumerate(addresses)]
    return names + addresses, {
        "summary": " ".join(said[:14]),
        "content": " ".join(said[14:21] + sent[:10]),
        "arguments": {"order_id": "17", "ship_to": addresses[-1], "contact": names[-1]},
        "evidence": [{"id": "t-1", "title": "Ticket", "excerpt": " ".join(said[21:] + sent[10:])}],
        "uncertainty": f"{said[0]} {sent[0]}",
    }


@pytest.mark.django_db
def test_no_planted_name_or_address_reaches_an_export(
    no_network, settings, django_capture_on_commit_callbacks, clock
):
    settings.HITL_EVAL_CAPTURE_SYNC = True
    settings.HITL_EVAL_APPROVAL_SAMPLE = 0.0
    rita, ml = UserFactory(username="rita"), UserFactory(username="ml")
    queue = QueueFactory(slug="ops")
    queue.members.add(rita)
    planted, fields = planted_ticket()
    review = make_review(queue=queue, **fields)
    opened_at = timezone.now()
    clock.shift(timedelta(seconds=90))
    with django_capture_on_commit_callbacks(execute=True):
        reason = f"{planted[0]} lives at {planted[-1]}, not the card holder"
        review_reject(review_id=review.review_id, reviewer=rita, opened_at=opened_at, reason=reason)
    case = EvalCase.objects.get()
    assert case.pii_found["PERSON"] >= len(NAMES) * 4 - 1
    assert case.pii_found["ADDRESS"] == sum(len(a) for a in ADDRESSES.values())
    case_accept(case_id=case.pk, actor=ml)
    version = dataset_publish(dataset=dataset_create(slug="people", name="People"), actor=ml)
    for fmt in EXPORT_FORMATS:
        exported = "".join(export_lines(version=version, fmt=fmt))
        assert "<PERSON_1>" in exported and "<ADDRESS_1>" in exported
        decoded = json.dumps([json.loads(line) for line in exported.splitlines()],
                             ensure_ascii=False)  # fmt: skip
        leaked = [value for value in planted if value in exported or value in decoded]
        assert leaked == [], (fmt, leaked)


def test_a_greeting_on_its_own_line_introduces_nobody():
    from evaluation.privacy import Redactor

    text = "Hi,\n\nYour refund was issued on Monday; expect it within 3-5 days.\n\nSupport"
    assert Redactor().text(text) == text
    assert "<PERSON_1>" in Redactor().text("Hi Anna, your refund was issued on Monday.")
