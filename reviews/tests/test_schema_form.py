"""The argument-edit form built from the action's JSON Schema, and the screen around it."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django import forms
from django.urls import reverse
from django.utils import timezone

from hitl.kernel import Actor
from policies.seed import seed_policy
from policies.services import grant_create
from policies.tests.factories import ActionTypeFactory
from reviews.admin.schema_form import ArgumentsForm, arguments_form, usable_schema
from reviews.admin.screen import deadline_left, duration_words, packet_context
from reviews.models import Decision, ReviewState
from reviews.services import agent_create
from reviews.tests.factories import (
    QueueFactory,
    UserFactory,
    make_decision,
    propose_review,
    role_groups,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "minLength": 1, "maxLength": 20, "description": "Order"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
        "units": {"type": "integer", "minimum": 1, "maximum": 10, "multipleOf": 2},
        "express": {"type": "boolean"},
        "channel": {"enum": ["email", "sms", 3]},
        "note": {"type": "string", "maxLength": 500},
        "address": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["order_id", "currency", "amount"],
}
CURRENT = {
    "order_id": "17",
    "currency": "EUR",
    "amount": 20,
    "units": 2,
    "express": False,
    "channel": "sms",
    "address": {"city": "Lyon"},
    "tags": ["mug"],
    "agent_note": "not in the schema",
}


def bound(**changes):
    """The form posted with CURRENT's values, as the browser sends them, plus `changes`."""
    data = {
        "arg-order_id": "17",
        "arg-currency": "EUR",
        "arg-amount": "20",
        "arg-units": "2",
        "arg-channel": "sms",
        "arg-note": "",
        "arg-address": '{"city": "Lyon"}',
        "arg-tags": '["mug"]',
    }
    for key, value in changes.items():
        if value is None:
            data.pop(f"arg-{key}", None)
        else:
            data[f"arg-{key}"] = value
    return ArgumentsForm(data, schema=SCHEMA, arguments=CURRENT)


# --- the form, from the schema ---


def test_each_property_gets_a_field_of_its_type_with_its_limits():
    form = ArgumentsForm(schema=SCHEMA, arguments=CURRENT)
    fields = form.fields
    assert list(fields) == list(SCHEMA["properties"])
    assert isinstance(fields["order_id"], forms.CharField)
    assert (fields["order_id"].max_length, fields["order_id"].min_length) == (20, 1)
    assert fields["order_id"].help_text == "Order"
    assert fields["currency"].widget.attrs["pattern"] == "[A-Z]{3}"
    assert isinstance(fields["amount"], forms.DecimalField)
    assert fields["amount"].widget.input_type == "number"
    assert fields["amount"].widget.attrs == {"step": "any", "max": "1000", "form": "decision-form"}
    assert isinstance(fields["units"], forms.IntegerField)
    assert {k: fields["units"].widget.attrs[k] for k in ("min", "max", "step")} == {
        "min": "1",
        "max": "10",
        "step": "2",
    }
    assert isinstance(fields["express"].widget, forms.CheckboxInput)
    assert isinstance(fields["channel"], forms.TypedChoiceField)
    assert [key for key, _ in fields["channel"].choices] == ["", "email", "sms", "3"]
    assert isinstance(fields["note"].widget, forms.Textarea)  # long text gets a text area
    # Nested values fall back to JSON, for that property only.
    assert isinstance(fields["address"], forms.JSONField)
    assert isinstance(fields["tags"], forms.JSONField)
    assert [n for n, f in fields.items() if f.required] == ["order_id", "currency", "amount"]
    assert form.kept == [("agent_note", "not in the schema")]


def test_the_form_is_prefilled_with_the_current_arguments():
    html = str(ArgumentsForm(schema=SCHEMA, arguments=CURRENT))
    assert re.search(r'name="arg-amount"[^>]*value="20"', html)
    assert re.search(r'<option value="sms" selected>', html)
    assert "Lyon" in html
    assert 'form="decision-form"' in html


def test_a_valid_post_gives_typed_arguments_and_keeps_the_others():
    form = bound(amount="12.5", units="4", express="on", channel="3", tags='["mug", "gift"]')
    assert form.is_valid(), form.errors
    assert form.arguments == {
        "order_id": "17",
        "currency": "EUR",
        "amount": 12.5,
        "units": 4,
        "express": True,
        "channel": 3,
        "address": {"city": "Lyon"},
        "tags": ["mug", "gift"],
        "agent_note": "not in the schema",
    }


def test_whole_numbers_stay_ints_and_blank_optional_fields_stay_absent():
    form = bound(amount="15.00", units=None, channel="", address="", tags="")
    assert form.is_valid(), form.errors
    assert form.arguments["amount"] == 15 and isinstance(form.arguments["amount"], int)
    for absent in ("units", "channel", "address", "tags", "note"):
        assert absent not in form.arguments
    assert form.arguments["express"] is False  # it was there, unchecked


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"amount": "1500"}, "amount", "Must be at most 1000."),
        ({"amount": "0"}, "amount", "Must be more than 0."),
        ({"amount": "lots"}, "amount", "Enter a number."),
        ({"units": "3"}, "units", "Must be a multiple of 2."),
        ({"units": "12"}, "units", "Must be at most 10."),
        ({"currency": "eur"}, "currency", "Must match ^[A-Z]{3}$."),
        ({"order_id": ""}, "order_id", "This field is required."),
        ({"order_id": "x" * 21}, "order_id", "at most 20 characters"),
        ({"channel": "fax"}, "channel", "Select a valid choice."),
        ({"address": "{city"}, "address", "Enter a valid JSON."),
        ({"order_id": "a\x00b"}, "order_id", "Null characters are not allowed."),
        ({"address": "[" * 5000 + "]" * 5000}, "address", "Nested too deeply."),
        ({"address": '{"a": NaN}'}, "address", "Numbers must be finite."),
        ({"amount": "1e400"}, "amount", "This number is too large."),
        ({"units": "1" * 5000}, "units", "Enter a whole number."),
    ],
)
def test_each_error_is_on_the_field_that_is_wrong(changes, field, message):
    form = bound(**changes)
    assert not form.is_valid()
    assert list(form.errors) == [field]
    assert message in " ".join(form.errors[field])
    assert list(form.error_fields()) == [f"arguments.{field}"]


def test_the_schema_has_the_last_word_on_what_a_field_cannot_check():
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "format": "email", "not": {"const": "a@b.c"}}},
        "required": ["code"],
    }
    form = ArgumentsForm({"arg-code": "a@b.c"}, schema=schema, arguments={"code": "x@y.z"})
    assert not form.is_valid()
    assert list(form.errors) == ["code"]
    assert form.fields["code"].widget.input_type == "email"


def test_a_services_field_errors_land_on_their_field():
    form = bound(amount="30")
    assert form.is_valid()
    form.add_service_errors(
        {
            "action.args.amount": ["30 is above the limit"],
            "arguments.currency": ["Unknown currency"],
            "queue": ["No such queue."],
        }
    )
    assert form.errors["amount"] == ["30 is above the limit"]
    assert form.errors["currency"] == ["Unknown currency"]
    assert form.non_field_errors() == ["No such queue."]


def test_an_amount_sent_as_text_stays_text_and_one_sent_as_a_number_stays_a_number():
    schema = {
        "type": "object",
        "properties": {
            "amount": {
                "type": ["number", "string"],
                "exclusiveMinimum": 0,
                "pattern": r"^[0-9]+(\.[0-9]{1,2})?$",
            }
        },
    }
    as_text = ArgumentsForm({"arg-amount": "15.50"}, schema=schema, arguments={"amount": "20.00"})
    as_number = ArgumentsForm({"arg-amount": "15.50"}, schema=schema, arguments={"amount": 20})
    assert as_text.is_valid() and as_number.is_valid()
    assert as_text.arguments == {"amount": "15.50"}
    assert as_number.arguments == {"amount": 15.5}
    too_precise = ArgumentsForm({"arg-amount": "1.555"}, schema=schema, arguments={"amount": "2"})
    assert not too_precise.is_valid() and list(too_precise.errors) == ["amount"]


def test_property_names_that_are_no_field_names_still_get_a_field():
    schema = {"type": "object", "properties": {"max-items": {"type": "integer"}}}
    form = ArgumentsForm({"arg-property_0": "3"}, schema=schema, arguments={"max-items": 1})
    assert form.is_valid() and form.arguments == {"max-items": 3}
    form.add_service_errors({"action.args.max-items": ["too many"]})
    assert form.errors["property_0"] == ["too many"]


@pytest.mark.django_db
def test_only_a_schema_with_properties_is_usable():
    ActionTypeFactory(name="typed_action")
    ActionTypeFactory(name="open_action", args_schema={"type": "object"})
    assert usable_schema("typed_action")["properties"] == {"id": {"type": "string"}}
    assert usable_schema("open_action") is None
    assert usable_schema("nobody_catalogued_this") is None


# --- the screen: posting through the decision service ---


@pytest.fixture
def desk(db):
    """The seed policy, an operations queue, a reviewer allowed refunds up to 1000, and two
    refunds proposed by an agent: one with the amount as text, one as a number."""
    seed_policy()
    groups = role_groups()
    reviewer = UserFactory(username="rita", grant=False, groups=[groups["Reviewers"]])
    grant_create(
        actor=None, user=reviewer, action_names=["issue_refund"], max_amount=Decimal("1000")
    )
    QueueFactory(slug="operations").members.add(reviewer)
    agent, _key = agent_create(actor=Actor.system("test"), name="support-agent")
    refunds = {
        name: propose_review(
            agent=agent,
            run_id=f"refund-{name}",
            action={
                "name": "issue_refund",
                "target_system": "billing",
                "args": {"order_id": "17", "amount": amount, "currency": "EUR"},
            },
            summary="Refund a damaged mug on order 17.",
            confidence=0.95,
        )
        for name, amount in (("text", "20.00"), ("number", 20))
    }
    return reviewer, refunds


def url(review, view="change"):
    return reverse(f"admin:reviews_approvalreview_{view}", args=[review.pk])


def posted(**changes):
    data = {
        "choice": "edit",
        "reason": "Only the mug was damaged",
        "arg-order_id": "17",
        "arg-currency": "EUR",
        "arg-amount": "20.00",
        "arg-reason": "",
    }
    data.update({f"arg-{k}": v for k, v in changes.items()})
    return data


def error_beside(html: str, field: str) -> str:
    """The error list the screen shows right after the field's input ("" when none)."""
    found = re.search(
        rf'<input[^>]*id="id_arg-{field}"[^>]*>\s*<ul class="errorlist" id="id_arg-{field}_errors">'
        r"(.*?)</ul>",
        html,
        re.S,
    )
    return re.sub(r"<[^>]+>", " ", found.group(1)).strip() if found else ""


def test_the_screen_offers_the_schema_form_not_a_json_box(client, desk):
    reviewer, refunds = desk
    client.force_login(reviewer)
    html = client.get(url(refunds["text"])).text
    assert re.search(r'<input type="number" name="arg-amount" value="20.00"', html)
    assert 'name="arg-currency"' in html and 'pattern="[A-Z]{3}"' in html
    assert 'name="arguments"' not in html
    assert "reviews/forms.css" in html
    # Native constraints of the edit fields never hold up the other buttons.
    assert re.search(r'value="approve" formnovalidate', html)


def test_a_valid_edit_records_typed_values(client, desk):
    reviewer, refunds = desk
    client.force_login(reviewer)
    review = refunds["number"]
    response = client.post(url(review, "decide"), posted(amount="15.5"))
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.state == ReviewState.EDITED
    assert review.final_arguments == {"order_id": "17", "amount": 15.5, "currency": "EUR"}
    decision = review.decisions.get()
    assert (decision.choice, decision.edited_arguments["amount"]) == ("edit", 15.5)
    page = client.get(url(review)).text
    assert "-  &quot;amount&quot;: 20," in page and "+  &quot;amount&quot;: 15.5," in page


def test_an_edit_of_an_amount_sent_as_text_keeps_it_text(client, desk):
    reviewer, refunds = desk
    client.force_login(reviewer)
    review = refunds["text"]
    assert client.post(url(review, "decide"), posted(amount="15.00")).status_code == 302
    review.refresh_from_db()
    assert review.final_arguments["amount"] == "15.00"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"amount": "-5"}, "amount", "Must be more than 0."),
        ({"currency": "euro"}, "currency", "Must match ^[A-Z]{3}$."),
        # Valid for the schema, refused by the service: above this reviewer's authority.
        ({"amount": "5000.00"}, "amount", "Not within your authority"),
    ],
)
def test_a_refused_edit_answers_the_form_again_with_the_error_beside_the_field(
    client, desk, changes, field, message
):
    reviewer, refunds = desk
    client.force_login(reviewer)
    review = refunds["text"]
    response = client.post(url(review, "decide"), posted(**changes))
    assert response.status_code == 200
    html = response.text
    assert message in error_beside(html, field)
    assert '<details class="hitl-card hitl-edit-args" id="edit-arguments" open>' in html
    # What was typed is still there, and the reason too.
    typed = next(iter(changes.values()))
    assert re.search(rf'name="arg-{field}"[^>]*value="{re.escape(typed)}"', html)
    assert "Only the mug was damaged" in html
    review.refresh_from_db()
    assert review.state == ReviewState.PENDING
    assert not Decision.objects.filter(review=review).exists()


def test_field_errors_the_service_gives_are_shown_beside_their_field(rf, desk):
    # What decide_view hands the screen after a refusal: what was typed, and the
    # service's field errors where it passes them on.
    reviewer, refunds = desk
    request = rf.post("/", posted(currency="USD"))
    request.user = reviewer
    submitted = {
        "choice": "edit",
        "reason": "x",
        "field_errors": {"action.args.currency": ["Only EUR refunds on this order."]},
    }
    context = packet_context(request=request, review=refunds["text"], submitted=submitted)
    form = context["arguments_form"]
    assert form.errors == {"currency": ["Only EUR refunds on this order."]}
    assert context["edit_open"] is True
    assert form["currency"].value() == "USD"


def test_the_whole_json_box_remains_for_programs_and_schemaless_actions(client, desk):
    reviewer, refunds = desk
    client.force_login(reviewer)
    review = refunds["number"]
    body = '{"order_id": "17", "amount": 12, "currency": "EUR"}'
    response = client.post(url(review, "decide"), {"choice": "edit", "arguments": body})
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.final_arguments["amount"] == 12
    assert arguments_form(review) is not None


# --- the screen's small things ---


@pytest.mark.parametrize(
    ("spent", "words"),
    [
        (None, "-"),
        (timedelta(microseconds=400), "under 1 s"),
        (timedelta(seconds=45), "45 s"),
        (timedelta(seconds=80, microseconds=123456), "1 min 20 s"),
        (timedelta(minutes=5), "5 min"),
        (timedelta(hours=2, minutes=5, seconds=9), "2 h 5 min"),
        (timedelta(days=3, hours=4), "3 d 4 h"),
    ],
)
def test_time_spent_reads_as_words(spent, words):
    assert duration_words(spent) == words


def test_the_decisions_table_shows_time_spent_in_words(client, desk, clock):
    reviewer, refunds = desk
    client.force_login(reviewer)
    review = refunds["text"]
    html = client.get(url(review)).text
    signed = re.search(r'name="opened_at" value="([^"]+)"', html).group(1)
    clock.shift(timedelta(seconds=80))
    client.post(url(review, "decide"), {"choice": "approve", "opened_at": signed})
    page = client.get(url(review)).text
    assert re.search(r'<td class="hitl-spent">1 min 2\d s</td>', page)
    assert "0:01:2" not in page  # no raw timedelta


def test_the_sla_stops_counting_once_the_review_is_decided(desk, clock):
    reviewer, refunds = desk
    on_time, late = refunds["text"], refunds["number"]
    assert "hitl-left" in deadline_left(on_time, on_time.due_at, timezone.now())
    make_decision(on_time, reviewer=reviewer, choice="approve")
    clock.shift(late.due_at - timezone.now() + timedelta(minutes=65))
    make_decision(late, reviewer=reviewer, choice="reject", reason="Wrong order")
    clock.shift(timedelta(days=2))
    for review in (on_time, late):
        review.refresh_from_db()
    assert "met" in deadline_left(on_time, on_time.due_at, timezone.now())
    assert "missed by 1h 05m" in deadline_left(late, late.due_at, timezone.now())
