"""PII detection on the synthetic corpus, offline, with recall and precision reported."""

import socket

import pytest

from evaluation.privacy import Redactor, find_pii
from evaluation.tests.corpus import LOOKALIKES, PLANTED, sentences


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
