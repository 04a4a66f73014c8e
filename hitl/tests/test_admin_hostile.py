"""Every admin changelist answers a hostile query string with the admin's "invalid filter"
response (a redirect to ?e=1, or a 400), never a 500; the filters people use keep working.

The changelists and their parameters are found, not listed: every ModelAdmin registered on
the admin site, and the parameters its list_filter, date_hierarchy and search declare. A
new admin or filter is covered the day it is registered.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib import admin
from django.contrib.admin import FieldListFilter, SimpleListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth.models import Group
from django.db import models, transaction
from django.test import RequestFactory
from django.urls import reverse
from django_q.models import Failure, Schedule, Success
from django_q.tasks import async_task, schedule

from evaluation.models import DatasetVersion, RegressionRun, TenantEvaluationSetting
from evaluation.services import capture_decision, dataset_create
from hitl.admin import ValidatedChangelistMixin
from hitl.kernel import Actor
from policies.models import Tenant
from policies.seed import seed_policy
from policies.tests.factories import PolicyEvaluationFactory
from reviews.models import ReviewRequest
from reviews.services import agent_create, review_approve, review_reject
from reviews.services.execution import execution_claim
from reviews.services.notifications import notification_preference_set
from reviews.tests.factories import QueueFactory, UserFactory, make_review

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

# What was found in the field, and its relatives: PostgreSQL refuses NUL in text; '²' and
# the Arabic-Indic one pass str.isdigit() but not int() alike; the rest probe numbers,
# lengths and dates.
HOSTILE_VALUES = [
    "\x00",
    "open\x00",
    "²",
    "\u0661",
    "\\",
    "%",
    "x" * 5000,
    "-1",
    "99999999999999999999",
    "-99999999999999999999",
    "1e309",
    "NaN",
    "breached",
    "",
    "'\"<>",
    "9999",
    "9999-12-31",
    "0001-01-01",
    "9999-12-31 23:00:00-05:00",
]
# The changelist's own parameters take any text; fewer probes keep the run short.
CHANGELIST_PARAMS = {
    "q": ["\x00", "\\", "x" * 5000, '"', "²"],
    "o": ["\x00", "²", "-99999999999999999999", "0.0.0", "1." * 500, "-"],
    "p": ["\x00", "²", "-1", "0", "99999999999999999999"],
    "all": ["\x00", ""],
    "_facets": ["\x00", "1"],
    "_to_field": ["\x00", "password", "id"],
    "_popup": ["\x00", "1"],
    "e": ["\x00", "1"],
}
DATE_EDGES = [
    ("9999", "12", "31"),
    ("9999", "12", None),
    ("9999", None, "31"),
    ("1", "1", "1"),
    ("0", "1", "1"),
    ("2025", "2", "30"),
    ("2025", "13", None),
    ("2025", None, "31"),
    (None, "12", "31"),
]
# Lookups no screen offers: each must be refused, whatever the field and value.
UNKNOWN_LOOKUPS = [
    ("{field}__regex", "\\"),
    ("{field}__in", "²,1"),
    ("{field}__gt", "99999999999999999999"),
    ("{field}__startswith", "%"),
]

ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def changelist_url(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def filter_parameters(model_admin, request):
    """The query parameters a changelist's filters read, derived the way the admin builds
    its filters (ChangeList.get_filters)."""
    names = set()
    for item in model_admin.get_list_filter(request):
        if isinstance(item, type) and issubclass(item, SimpleListFilter):
            names.add(item.parameter_name)
            continue
        field_path, filter_class = item if isinstance(item, (list, tuple)) else (item, None)
        field = get_fields_from_path(model_admin.model, field_path)[-1]
        filter_class = filter_class or FieldListFilter.create
        spec = filter_class(
            field, request, {}, model_admin.model, model_admin, field_path=field_path
        )
        names.update(spec.expected_parameters())
    if model_admin.date_hierarchy:
        names.update(f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day"))
    return sorted(names)


def unknown_lookups(model):
    fields = [
        f.name
        for f in model._meta.get_fields()
        if f.concrete and not f.is_relation and not isinstance(f, models.JSONField)
    ]
    # `summary__regex` is the lookup found in the field; any model gets the probe.
    probes = [
        ("summary__regex", "\\"),
        ("nonexistent", "1"),
        ("pk__in", "²"),
        ("\x00", "1"),
        ("risk\x00__exact", "low"),
    ]
    for field in fields:
        probes += [(pattern.format(field=field), value) for pattern, value in UNKNOWN_LOOKUPS]
    return probes


def refused(response):
    """The admin's answer to a bad filter: back to the unfiltered list with ?e=1, or a 400
    (the admin refuses a relational lookup it was not told about with a 400), or, when ?e=1
    was already there, the admin's error page."""
    if response.status_code == 302:
        return response["Location"].endswith("?e=1")
    if response.status_code == 200:
        return "admin/invalid_setup.html" in [t.name for t in response.templates]
    return response.status_code == 400


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def seeded(db, frozen):
    """A row in every model that has an admin, in two tenants."""
    seed_policy()
    superuser = UserFactory(username="root", is_superuser=True)
    reviewer = UserFactory(username="rita")
    Group.objects.create(name="reviewers")
    for slug in ("acme", "globex"):
        Tenant.objects.create(slug=slug, name=slug.title())

    def review(**fields):
        return make_review(tenant=fields["queue"].tenant, **fields)

    PolicyEvaluationFactory(tenant="acme")
    PolicyEvaluationFactory(tenant="globex", action_name="issue_refund", outcome="human_review")

    agent, _ = agent_create(
        actor=Actor.system("test"), name="hooked", callback_url="https://agent.example.com/h"
    )
    acme = QueueFactory(slug="acme-ops", name="Acme ops", tenant="acme", sla=timedelta(hours=1))
    globex = QueueFactory(
        slug="globex-ops", name="Globex ops", tenant="globex", sla=timedelta(days=1)
    )
    rows = {
        "acme_high": review(
            queue=acme,
            reviewers=[reviewer],
            agent=agent.name,
            risk="high",
            summary="Refund the acme order",
        ),
        "globex_low": review(
            queue=globex,
            reviewers=[reviewer],
            agent=agent.name,
            risk="low",
            summary="Refund the globex order",
        ),
        "edit": review(
            queue=globex,
            reviewers=[reviewer],
            kind="edit",
            action_name="draft_reply",
            content="Hello",
            summary="Reply to the globex customer",
        ),
        "escalation": review(
            queue=acme, reviewers=[reviewer], kind="escalation", summary="Large acme refund"
        ),
    }
    approved = review(queue=acme, reviewers=[reviewer], agent=agent.name, summary="Approved")
    review_approve(review_id=approved.review_id, reviewer=reviewer)
    execution_claim(review_id=approved.review_id, actor=Actor.of_agent(agent))
    rejected = review(queue=globex, reviewers=[reviewer], agent=agent.name, summary="No")
    decision = review_reject(
        review_id=rejected.review_id,
        reviewer=reviewer,
        reason="The order was already refunded by the finance team last week.",
    )
    assert capture_decision(decision_id=decision.pk) is not None
    dataset = dataset_create(slug="refunds", name="Refunds", action_names=["issue_refund"])
    version = DatasetVersion.objects.create(dataset=dataset, number=1)
    RegressionRun.objects.create(version=version, agent="agent:decide")
    TenantEvaluationSetting.objects.create(tenant="globex", allow_evaluation=True)
    notification_preference_set(actor=superuser, user=reviewer, mode="digest")

    schedule("math.floor", 1.5, name="nightly", schedule_type=Schedule.DAILY)
    async_task("math.floor", 1.5, group="maths")
    started = NOW - timedelta(minutes=1)
    Success.objects.create(
        id="a" * 32, name="ok", func="math.floor", group="maths", started=started, stopped=NOW
    )
    Failure.objects.create(
        id="b" * 32,
        name="boom",
        func="math.sqrt",
        group="maths",
        started=started,
        stopped=NOW,
        success=False,
    )
    for model in admin.site._registry:
        assert model._default_manager.exists(), f"no {model._meta.label} row to list"
    return {"superuser": superuser, "acme": acme, "globex": globex, **rows}


@pytest.fixture
def root(client, seeded):
    client.force_login(seeded["superuser"])
    # A 500 is collected and reported with the others, not raised at the first one.
    client.raise_request_exception = False
    return client


def probe(client, model, params):
    # On PostgreSQL a failed statement aborts the test's transaction: roll back to before
    # the request, so each probe reports its own answer rather than the first failure's.
    savepoint = transaction.savepoint()
    response = client.get(changelist_url(model), params)
    if response.status_code >= 500:
        transaction.savepoint_rollback(savepoint)
    else:
        transaction.savepoint_commit(savepoint)
    return response


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "model_admin"), ADMINS, ids=[model._meta.label for model, _ in ADMINS]
)
def test_hostile_filter_values_are_refused_not_500(root, seeded, model, model_admin):
    request = RequestFactory().get("/")
    request.user = seeded["superuser"]
    probes = [
        (name, value)
        for name in filter_parameters(model_admin, request)
        for value in HOSTILE_VALUES
    ]
    probes += [(name, value) for name, values in CHANGELIST_PARAMS.items() for value in values]
    errors, accepted_nul = [], []
    for name, value in probes:
        response = probe(root, model, {name: value})
        if response.status_code >= 500:
            errors.append((name, value[:20], response.status_code))
        elif "\x00" in value and not refused(response):
            accepted_nul.append((name, response.status_code))
    # The date hierarchy reads its parameters together: the edges of the calendar.
    if field := model_admin.date_hierarchy:
        for year, month, day in DATE_EDGES:
            params = {f"{field}__year": year, f"{field}__month": month, f"{field}__day": day}
            params = {k: v for k, v in params.items() if v is not None}
            response = probe(root, model, params)
            if response.status_code >= 500:
                errors.append((params, response.status_code))
    assert not errors, f"500s: {errors}"
    # A NUL byte is never a filter value (PostgreSQL cannot even compare one): refused
    # wherever it appears, not only where it would have reached the database.
    assert not accepted_nul, f"NUL accepted: {accepted_nul}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "model_admin"), ADMINS, ids=[model._meta.label for model, _ in ADMINS]
)
def test_unknown_lookups_are_refused(root, model, model_admin):
    accepted = []
    for name, value in unknown_lookups(model):
        response = probe(root, model, {name: value})
        if not refused(response):
            accepted.append((name, response.status_code))
    assert not accepted, f"unknown lookups accepted: {accepted}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "model_admin"), ADMINS, ids=[model._meta.label for model, _ in ADMINS]
)
def test_every_offered_filter_choice_still_works(root, model, model_admin):
    """Each link the filter sidebar offers (and with facets on) is answered with the list."""
    url = changelist_url(model)
    page = root.get(url)
    assert page.status_code == 200
    assert page.context["cl"].result_count > 0  # the probes mean something on a full list
    offered = {
        choice["query_string"]
        for spec in page.context["cl"].filter_specs
        for choice in spec.choices(page.context["cl"])
    }
    failures = []
    for query in sorted(offered):
        for suffix in ("", "&_facets=1"):
            response = root.get(url + query + suffix)
            if response.status_code != 200:
                failures.append((query + suffix, response.status_code))
    assert not failures, f"offered choices not answered with the list: {failures}"


def listed(response):
    return {row.pk for row in response.context["cl"].result_list}


@pytest.mark.django_db
def test_inbox_filters_show_the_right_rows(root, seeded, frozen):
    inbox = reverse("admin:reviews_reviewrequest_changelist")
    high, low = seeded["acme_high"], seeded["globex_low"]
    edit, escalation = seeded["edit"], seeded["escalation"]

    by_risk = root.get(inbox, {"risk__exact": "high"})
    assert by_risk.status_code == 200
    assert high.pk in listed(by_risk) and low.pk not in listed(by_risk)

    by_queue = root.get(inbox, {"queue": seeded["globex"].pk})
    assert by_queue.status_code == 200
    assert listed(by_queue) == {low.pk, edit.pk}  # the open ones of that queue

    by_kind = root.get(inbox, {"kind__exact": "edit", "state": "all"})
    assert listed(by_kind) == {edit.pk}

    assert root.get(inbox, {"sla": "breached"}).context["cl"].result_count == 0
    frozen.shift(timedelta(hours=2))  # past the acme queue's SLA, within globex's
    overdue = root.get(inbox, {"sla": "breached"})
    assert overdue.status_code == 200
    assert listed(overdue) == {high.pk, escalation.pk}
    assert low.pk in listed(root.get(inbox))

    escalations = reverse("admin:reviews_escalationreview_changelist")
    assert listed(root.get(escalations, {"queue": seeded["acme"].pk})) == {escalation.pk}


@pytest.mark.django_db
def test_what_was_found_in_the_field_is_refused(root, seeded):
    inbox = reverse("admin:reviews_reviewrequest_changelist")
    queues = reverse("admin:reviews_queue_changelist")
    for url, params in [
        (inbox, {"queue": "²"}),
        (inbox, {"kind__exact": "\x00"}),
        (inbox, {"risk__exact": "\x00"}),
        (inbox, {"state": "\x00"}),
        (inbox, {"summary__regex": "\\"}),
        (inbox, {"risk__exact": "catastrophic"}),
        (inbox, {"assigned": "someone"}),
        (queues, {"sla": "breached"}),
        (reverse("admin:evaluation_evalcase_changelist"), {"label__exact": "\x00"}),
        (reverse("admin:policies_policyevaluation_changelist"), {"rule": "\x00"}),
        (
            reverse("admin:policies_policyevaluation_changelist"),
            {"created_at__year": "9999", "created_at__month": "12"},
        ),
    ]:
        response = root.get(url, params)
        assert refused(response), (url, params, response.status_code)
    # The refused page says what was wrong, and lists everything again.
    followed = root.get(inbox, {"queue": "²"}, follow=True)
    assert followed.status_code == 200
    assert "queue" in " ".join(str(m) for m in followed.context["messages"])
    assert ReviewRequest.objects.exists()


def test_every_registered_admin_checks_its_changelist():
    # An app added after reviews in INSTALLED_APPS, or a project admin on a plain
    # admin.ModelAdmin, would be listed here.
    unchecked = [
        model._meta.label
        for model, model_admin in ADMINS
        if not isinstance(model_admin, ValidatedChangelistMixin)
    ]
    assert unchecked == []


@pytest.mark.django_db
def test_policy_and_evaluation_filters_show_the_right_rows(root, seeded):
    evaluations = reverse("admin:policies_policyevaluation_changelist")
    reviewed = root.get(evaluations, {"outcome__exact": "human_review"})
    assert [e.tenant for e in reviewed.context["cl"].result_list] == ["globex"]
    this_month = root.get(evaluations, {"created_at__year": "2025", "created_at__month": "3"})
    assert this_month.context["cl"].result_count == 2
    assert root.get(evaluations, {"created_at__year": "2024"}).context["cl"].result_count == 0

    cases = reverse("admin:evaluation_evalcase_changelist")
    rejected = root.get(cases, {"label": "reject", "status__exact": "candidate"})
    assert rejected.status_code == 200
    assert [c.label for c in rejected.context["cl"].result_list] == ["reject"]
    assert root.get(cases, {"label": "approve"}).context["cl"].result_count == 0
